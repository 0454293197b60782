//! Appending nodes to a graph under construction: each helper computes its node's output
//! shape from its inputs', so the backbones only say what to connect.

use super::ops::{Node, NodeId, Op};

/// Appends nodes to a graph under construction, computing each one's output shape.
pub(super) struct Builder {
    /// The nodes so far, in execution order.
    pub(super) nodes: Vec<Node>,
}

impl Builder {
    pub(super) fn push(
        &mut self,
        name: String,
        op: Op,
        inputs: Vec<NodeId>,
        shape: Vec<usize>,
    ) -> NodeId {
        self.nodes.push(Node {
            name,
            op,
            inputs,
            shape,
        });
        self.nodes.len() - 1
    }

    pub(super) fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id].shape
    }

    pub(super) fn chw(&self, id: NodeId) -> (usize, usize, usize) {
        let s = self.shape(id);
        (s[0], s[1], s[2])
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv(
        &mut self,
        x: NodeId,
        name: &str,
        c_out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        bias: bool,
    ) -> NodeId {
        let (c_in, h, w) = self.chw(x);
        let padding = kernel / 2;
        let out = |n: usize| (n + 2 * padding - kernel) / stride + 1;
        let op = Op::Conv {
            param: name.into(),
            c_in,
            c_out,
            kernel,
            stride,
            padding,
            groups,
            bias,
        };
        self.push(name.into(), op, vec![x], vec![c_out, out(h), out(w)])
    }

    pub(super) fn bn(&mut self, x: NodeId, name: &str) -> NodeId {
        let shape = self.shape(x).to_vec();
        let op = Op::BatchNorm {
            param: name.into(),
            channels: shape[0],
        };
        self.push(name.into(), op, vec![x], shape)
    }

    pub(super) fn unary(&mut self, x: NodeId, name: String, op: Op) -> NodeId {
        let s = self.shape(x).to_vec();
        let shape = match op {
            Op::MaxPool2 => vec![s[0], s[1] / 2, s[2] / 2],
            Op::Upsample2 => vec![s[0], s[1] * 2, s[2] * 2],
            Op::GlobalAvgPool => vec![s[0], 1, 1],
            Op::Flatten => vec![s.iter().product()],
            _ => s,
        };
        self.push(name, op, vec![x], shape)
    }

    /// conv -> batch norm -> activation, named `{name}.conv`, `{name}.bn`, `{name}.act`.
    #[allow(clippy::too_many_arguments)] // the convolution's own parameters, plus the activation
    pub(super) fn conv_bn_act(
        &mut self,
        x: NodeId,
        name: &str,
        c_out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        act: Option<Op>,
    ) -> NodeId {
        let y = self.conv(
            x,
            &format!("{name}.conv"),
            c_out,
            kernel,
            stride,
            groups,
            false,
        );
        let y = self.bn(y, &format!("{name}.bn"));
        match act {
            Some(op) => self.unary(y, format!("{name}.act"), op),
            None => y,
        }
    }

    pub(super) fn binary(&mut self, a: NodeId, b: NodeId, name: String, op: Op) -> NodeId {
        let shape = self.shape(a).to_vec();
        self.push(name, op, vec![a, b], shape)
    }

    pub(super) fn linear(&mut self, x: NodeId, name: &str, outputs: usize) -> NodeId {
        let inputs = self.shape(x)[0];
        let op = Op::Linear {
            param: name.into(),
            inputs,
            outputs,
        };
        self.push(name.into(), op, vec![x], vec![outputs])
    }
}
