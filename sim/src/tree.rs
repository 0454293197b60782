//! Barnes-Hut octree with quadrupole moments.
//!
//! Nodes are stored depth-first in one `Vec` with a skip pointer (`next`), so a force walk is
//! a single loop without a stack. Node moments are accumulated in f64 while building and stored
//! in f32; each interaction is evaluated in f32 and summed per particle in f64. A cell is
//! accepted when the particle is farther from its centre of mass than `size / theta + delta`,
//! where `delta` is the offset of the centre of mass from the cell centre (Barnes 1994); this
//! also guarantees the particle lies outside the accepted cell.

/// Maximum number of particles in a leaf.
const LEAF_SIZE: usize = 8;
use rayon::prelude::*;

/// Depth limit (guards against coincident particles).
const MAX_DEPTH: usize = 48;

#[derive(Clone, Copy, Debug)]
struct Node {
    com: [f32; 3],
    mass: f32,
    /// Traceless quadrupole: xx, yy, zz, xy, xz, yz.
    quad: [f32; 6],
    open2: f32,
    /// First particle of the subtree in tree order.
    first: u32,
    /// Particles in the subtree.
    count: u32,
    next: u32,
    leaf: bool,
}

struct Moments {
    mass: f64,
    com: [f64; 3],
    quad: [f64; 6],
}

/// A Barnes-Hut octree built over a set of particle positions and masses.
pub struct Octree {
    nodes: Vec<Node>,
    /// Particles in tree order: x, y, z, mass.
    sorted: Vec<[f32; 4]>,
    /// Original index of each sorted particle.
    order: Vec<u32>,
    theta: f64,
}

fn quad_term(q: &mut [f64; 6], m: f64, d: [f64; 3]) {
    let d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    q[0] += m * (3.0 * d[0] * d[0] - d2);
    q[1] += m * (3.0 * d[1] * d[1] - d2);
    q[2] += m * (3.0 * d[2] * d[2] - d2);
    q[3] += m * 3.0 * d[0] * d[1];
    q[4] += m * 3.0 * d[0] * d[2];
    q[5] += m * 3.0 * d[1] * d[2];
}

impl Octree {
    /// Builds the tree. `theta` is the opening angle (smaller is more accurate).
    pub fn build(pos: &[[f64; 3]], mass: &[f64], theta: f64) -> Octree {
        let n = pos.len();
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for p in pos {
            for k in 0..3 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        let mut center = [0.0; 3];
        let mut half: f64 = 0.0;
        for k in 0..3 {
            center[k] = 0.5 * (lo[k] + hi[k]);
            half = half.max(0.5 * (hi[k] - lo[k]));
        }
        let half = half * 1.0001 + 1e-12;
        let mut tree = Octree {
            nodes: Vec::with_capacity(n / 2 + 16),
            sorted: Vec::with_capacity(n),
            order: Vec::with_capacity(n),
            theta,
        };
        if n == 0 {
            return tree;
        }
        let mut idx: Vec<u32> = (0..n as u32).collect();
        tree.build_node(pos, mass, &mut idx, center, half, 0);
        tree
    }

    fn build_node(
        &mut self,
        pos: &[[f64; 3]],
        mass: &[f64],
        idx: &mut [u32],
        center: [f64; 3],
        half: f64,
        depth: usize,
    ) -> Moments {
        let me = self.nodes.len();
        self.nodes.push(Node {
            com: [0.0; 3],
            mass: 0.0,
            quad: [0.0; 6],
            open2: 0.0,
            first: 0,
            count: 0,
            next: 0,
            leaf: false,
        });
        let first = self.sorted.len();
        let mut mom = Moments {
            mass: 0.0,
            com: [0.0; 3],
            quad: [0.0; 6],
        };
        if idx.len() <= LEAF_SIZE || depth >= MAX_DEPTH {
            for &i in idx.iter() {
                let (p, m) = (pos[i as usize], mass[i as usize]);
                mom.mass += m;
                for k in 0..3 {
                    mom.com[k] += m * p[k];
                }
                self.sorted
                    .push([p[0] as f32, p[1] as f32, p[2] as f32, m as f32]);
                self.order.push(i);
            }
            for k in 0..3 {
                mom.com[k] /= mom.mass;
            }
            for &i in idx.iter() {
                let p = pos[i as usize];
                let d = [p[0] - mom.com[0], p[1] - mom.com[1], p[2] - mom.com[2]];
                quad_term(&mut mom.quad, mass[i as usize], d);
            }
            self.nodes[me].leaf = true;
        } else {
            let octant = |p: [f64; 3]| -> usize {
                (p[0] >= center[0]) as usize
                    | (((p[1] >= center[1]) as usize) << 1)
                    | (((p[2] >= center[2]) as usize) << 2)
            };
            idx.sort_by_key(|&i| octant(pos[i as usize]));
            let mut children: Vec<Moments> = Vec::with_capacity(8);
            let mut start = 0;
            for o in 0..8 {
                let mut end = start;
                while end < idx.len() && octant(pos[idx[end] as usize]) == o {
                    end += 1;
                }
                if end > start {
                    let h = 0.5 * half;
                    let c = [
                        center[0] + if o & 1 != 0 { h } else { -h },
                        center[1] + if o & 2 != 0 { h } else { -h },
                        center[2] + if o & 4 != 0 { h } else { -h },
                    ];
                    children.push(self.build_node(
                        pos,
                        mass,
                        &mut idx[start..end],
                        c,
                        h,
                        depth + 1,
                    ));
                }
                start = end;
            }
            for c in &children {
                mom.mass += c.mass;
                for k in 0..3 {
                    mom.com[k] += c.mass * c.com[k];
                }
            }
            for k in 0..3 {
                mom.com[k] /= mom.mass;
            }
            for c in &children {
                for (q, cq) in mom.quad.iter_mut().zip(c.quad) {
                    *q += cq;
                }
                let d = [
                    c.com[0] - mom.com[0],
                    c.com[1] - mom.com[1],
                    c.com[2] - mom.com[2],
                ];
                quad_term(&mut mom.quad, c.mass, d);
            }
        }
        let delta = ((mom.com[0] - center[0]).powi(2)
            + (mom.com[1] - center[1]).powi(2)
            + (mom.com[2] - center[2]).powi(2))
        .sqrt();
        let r_open = 2.0 * half / self.theta + delta;
        let next = self.nodes.len() as u32;
        let node = &mut self.nodes[me];
        node.com = mom.com.map(|c| c as f32);
        node.mass = mom.mass as f32;
        node.quad = mom.quad.map(|c| c as f32);
        node.open2 = (r_open * r_open) as f32;
        node.next = next;
        node.first = first as u32;
        node.count = idx.len() as u32;
        mom
    }

    /// Number of nodes (a measure of tree size).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Accelerations and potentials of all particles (in the order the tree was built
    /// with), self-interaction excluded, with Plummer softening `eps`.
    ///
    /// The walk is done once per group of at most `GROUP_SIZE` neighbouring particles
    /// (Barnes 1990): a cell is accepted for the whole group only if it passes the opening
    /// test from the nearest point of the group's bounding box, so every particle sees a
    /// criterion at least as strict as its own. Groups run in parallel; each particle's sum
    /// has a fixed order, so the result does not depend on the number of threads.
    pub fn forces(&self, eps: f64) -> (Vec<[f64; 3]>, Vec<f64>) {
        let n = self.sorted.len();
        let mut groups = Vec::new();
        let mut i = 0;
        while i < self.nodes.len() {
            if self.nodes[i].count as usize <= GROUP_SIZE {
                groups.push(i);
                i = self.nodes[i].next as usize;
            } else {
                i += 1;
            }
        }
        let eps = eps as f32;
        let per_group: Vec<Vec<([f64; 3], f64)>> = groups
            .par_iter()
            .map_init(Lists::default, |lists, &g| self.group_forces(g, eps, lists))
            .collect();
        let mut acc = vec![[0.0; 3]; n];
        let mut pot = vec![0.0; n];
        for (&g, res) in groups.iter().zip(per_group) {
            let first = self.nodes[g].first as usize;
            for (k, (a, p)) in res.into_iter().enumerate() {
                let orig = self.order[first + k] as usize;
                acc[orig] = a;
                pot[orig] = p;
            }
        }
        (acc, pot)
    }

    /// Number of (cell, particle) and (particle, particle) interactions one force
    /// evaluation performs: the work measure behind the benchmarks.
    pub fn interaction_count(&self) -> (u64, u64) {
        let mut lists = Lists::default();
        let (mut cells, mut parts) = (0u64, 0u64);
        let mut i = 0;
        while i < self.nodes.len() {
            if self.nodes[i].count as usize <= GROUP_SIZE {
                self.fill_lists(i, &mut lists);
                let m = self.nodes[i].count as u64;
                cells += m * lists.cells.len as u64;
                parts += m * lists.parts.len as u64;
                i = self.nodes[i].next as usize;
            } else {
                i += 1;
            }
        }
        (cells, parts)
    }

    fn group_forces(&self, g: usize, eps: f32, lists: &mut Lists) -> Vec<([f64; 3], f64)> {
        self.fill_lists(g, lists);
        let node = &self.nodes[g];
        let first = node.first as usize;
        let members = &self.sorted[first..first + node.count as usize];
        let eps2 = eps * eps;
        let c = &lists.cells;
        let q = &lists.parts;
        members
            .iter()
            .map(|p| {
                let mut acc = [0.0f64; 3];
                let mut pot = 0.0f64;
                for chunk in c.blocks.chunks(CHUNK / LANES) {
                    let (mut ax, mut ay, mut az, mut ph) =
                        ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
                    for b in chunk {
                        for l in 0..LANES {
                            let dx = b.x[l] - p[0];
                            let dy = b.y[l] - p[1];
                            let dz = b.z[l] - p[2];
                            let r2s = dx * dx + dy * dy + dz * dz + eps2;
                            let inv_r = 1.0 / r2s.sqrt();
                            let inv_r2 = inv_r * inv_r;
                            let inv_r3 = inv_r * inv_r2;
                            let inv_r5 = inv_r3 * inv_r2;
                            let qx = b.q[0][l] * dx + b.q[3][l] * dy + b.q[4][l] * dz;
                            let qy = b.q[3][l] * dx + b.q[1][l] * dy + b.q[5][l] * dz;
                            let qz = b.q[4][l] * dx + b.q[5][l] * dy + b.q[2][l] * dz;
                            let rqr = dx * qx + dy * qy + dz * qz;
                            let mono = b.m[l] * inv_r3;
                            let quad_r = 2.5 * rqr * inv_r5 * inv_r2;
                            ax[l] += mono * dx - qx * inv_r5 + quad_r * dx;
                            ay[l] += mono * dy - qy * inv_r5 + quad_r * dy;
                            az[l] += mono * dz - qz * inv_r5 + quad_r * dz;
                            ph[l] -= b.m[l] * inv_r + 0.5 * rqr * inv_r5;
                        }
                    }
                    add_lanes(&mut acc, &mut pot, &ax, &ay, &az, &ph);
                }
                for chunk in q.blocks.chunks(CHUNK / LANES) {
                    let (mut ax, mut ay, mut az, mut ph) =
                        ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
                    for b in chunk {
                        for l in 0..LANES {
                            let dx = b.x[l] - p[0];
                            let dy = b.y[l] - p[1];
                            let dz = b.z[l] - p[2];
                            let d2 = dx * dx + dy * dy + dz * dz;
                            // The particle itself (d = 0) contributes nothing.
                            let w = if d2 > 0.0 { 1.0 } else { 0.0 };
                            let inv_r = w / (d2 + eps2).max(1e-30).sqrt();
                            let m_inv_r = b.m[l] * inv_r;
                            let m_inv_r3 = m_inv_r * inv_r * inv_r;
                            ax[l] += m_inv_r3 * dx;
                            ay[l] += m_inv_r3 * dy;
                            az[l] += m_inv_r3 * dz;
                            ph[l] -= m_inv_r;
                        }
                    }
                    add_lanes(&mut acc, &mut pot, &ax, &ay, &az, &ph);
                }
                (acc, pot)
            })
            .collect()
    }

    fn fill_lists(&self, g: usize, lists: &mut Lists) {
        let node = &self.nodes[g];
        let first = node.first as usize;
        let members = &self.sorted[first..first + node.count as usize];
        let mut lo = [f32::INFINITY; 3];
        let mut hi = [f32::NEG_INFINITY; 3];
        for p in members {
            for k in 0..3 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        lists.clear();
        let mut i = 0usize;
        while i < self.nodes.len() {
            let c = &self.nodes[i];
            let mut d2 = 0.0f32;
            for k in 0..3 {
                let d = (lo[k] - c.com[k]).max(c.com[k] - hi[k]).max(0.0);
                d2 += d * d;
            }
            if d2 > c.open2 {
                lists.cells.push(c.com, c.mass, &c.quad);
                i = c.next as usize;
            } else if c.leaf {
                let f = c.first as usize;
                for p in &self.sorted[f..f + c.count as usize] {
                    lists.parts.push([p[0], p[1], p[2]], p[3], &[0.0; 6]);
                }
                i = c.next as usize;
            } else {
                i += 1;
            }
        }
    }
}

/// Maximum particles sharing one interaction list.
const GROUP_SIZE: usize = 64;
/// Terms summed in f32 before being added to the f64 total.
const CHUNK: usize = 64;
/// Independent f32 accumulators (SIMD lanes) per sum.
const LANES: usize = 8;

fn add_lanes(
    acc: &mut [f64; 3],
    pot: &mut f64,
    ax: &[f32; LANES],
    ay: &[f32; LANES],
    az: &[f32; LANES],
    ph: &[f32; LANES],
) {
    for l in 0..LANES {
        acc[0] += ax[l] as f64;
        acc[1] += ay[l] as f64;
        acc[2] += az[l] as f64;
        *pot += ph[l] as f64;
    }
}

/// A block of LANES sources (structure of arrays inside, so the inner loops vectorise
/// without bounds checks). Unused lanes hold massless sources far away, which add exactly 0.
#[derive(Clone, Copy)]
struct Block {
    x: [f32; LANES],
    y: [f32; LANES],
    z: [f32; LANES],
    m: [f32; LANES],
    q: [[f32; LANES]; 6],
}

const EMPTY_BLOCK: Block = Block {
    x: [1e18; LANES],
    y: [1e18; LANES],
    z: [1e18; LANES],
    m: [0.0; LANES],
    q: [[0.0; LANES]; 6],
};

/// Sources of an interaction list.
#[derive(Default)]
struct Sources {
    blocks: Vec<Block>,
    len: usize,
}

impl Sources {
    fn push(&mut self, x: [f32; 3], m: f32, q: &[f32; 6]) {
        let l = self.len % LANES;
        if l == 0 {
            self.blocks.push(EMPTY_BLOCK);
        }
        let b = self.blocks.last_mut().expect("a block was just pushed");
        b.x[l] = x[0];
        b.y[l] = x[1];
        b.z[l] = x[2];
        b.m[l] = m;
        for k in 0..6 {
            b.q[k][l] = q[k];
        }
        self.len += 1;
    }

    fn clear(&mut self) {
        self.blocks.clear();
        self.len = 0;
    }
}

/// Reusable interaction lists of one group walk.
#[derive(Default)]
struct Lists {
    cells: Sources,
    parts: Sources,
}

impl Lists {
    fn clear(&mut self) {
        self.cells.clear();
        self.parts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coincident_and_tiny_sets_give_finite_forces() {
        // 200 particles on one point (the depth limit must stop the recursion) plus a
        // companion: every force finite, the companion pulled towards the clump.
        let mut pos = vec![[1.0, 2.0, 3.0]; 200];
        pos.push([5.0, 2.0, 3.0]);
        let mass = vec![0.01; pos.len()];
        let tree = Octree::build(&pos, &mass, 0.6);
        let (acc, pot) = tree.forces(0.1);
        assert!(acc.iter().flatten().chain(&pot).all(|v| v.is_finite()));
        assert!(acc[200][0] < 0.0);
        // Newton at 4 units: 200 * 0.01 / (16 + 0.01) (softened).
        let want = 2.0 / (16.0 + 0.01f64) * (16.0 / (16.0 + 0.01f64)).sqrt();
        assert!(
            (acc[200][0] + want).abs() < 1e-4 * want,
            "{} vs {want}",
            acc[200][0]
        );
        let one = Octree::build(&[[0.0; 3]], &[1.0], 0.6).forces(0.1);
        assert_eq!(one.0, vec![[0.0; 3]]);
        assert_eq!(one.1, vec![0.0]);
        let none = Octree::build(&[], &[], 0.6).forces(0.1);
        assert!(none.0.is_empty());
    }
}
