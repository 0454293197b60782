//! The CPU kernels candle lacks or runs slowly, each one fused op with a hand-written backward:
//! convolution by im2col and gemm ([`conv`], over [`matrix`]'s products), grouped and
//! depthwise convolution plane by plane ([`grouped_conv`]), pooling and upsampling ([`pool`]),
//! ReLU ([`relu`]) and training-mode batch normalisation ([`batch_norm`]); [`storage`] reaches
//! a tensor's CPU floats.

pub mod batch_norm;
#[allow(unsafe_code)] // buffers gemm fills before they are read
pub(crate) mod conv;
pub(crate) mod grouped_conv;
#[allow(unsafe_code)] // the gemm calls
pub(crate) mod matrix;
pub(crate) mod pool;
pub(crate) mod relu;
pub(crate) mod storage;
