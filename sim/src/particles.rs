//! The particle state of a simulation (structure of arrays, f64).

/// Which component of a galaxy a particle belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// Dark-matter halo (not rendered).
    Halo,
    /// Stellar disk (rendered into the images).
    Disk,
}

/// Positions, velocities and masses of all particles.
///
/// The state is kept in f64: the drift `x += v dt` over thousands of steps is where f32
/// round-off would accumulate. The force calculation copies positions into f32 tree nodes.
#[derive(Clone, Debug, Default)]
pub struct Particles {
    /// Positions (kpc).
    pub pos: Vec<[f64; 3]>,
    /// Velocities (internal units, 207.386 km/s).
    pub vel: Vec<[f64; 3]>,
    /// Masses (1e10 Msun).
    pub mass: Vec<f64>,
    /// Component of each particle.
    pub component: Vec<Component>,
    /// Index of the galaxy each particle started in (0 = primary, 1 = secondary).
    pub galaxy: Vec<u8>,
}

impl Particles {
    /// Number of particles.
    pub fn len(&self) -> usize {
        self.mass.len()
    }

    /// True when there are no particles.
    pub fn is_empty(&self) -> bool {
        self.mass.is_empty()
    }

    /// Appends all particles of `other`.
    pub fn extend(&mut self, other: &Particles) {
        self.pos.extend_from_slice(&other.pos);
        self.vel.extend_from_slice(&other.vel);
        self.mass.extend_from_slice(&other.mass);
        self.component.extend_from_slice(&other.component);
        self.galaxy.extend_from_slice(&other.galaxy);
    }

    /// Total mass.
    pub fn total_mass(&self) -> f64 {
        self.mass.iter().sum()
    }

    /// Centre of mass position and velocity.
    pub fn center_of_mass(&self) -> ([f64; 3], [f64; 3]) {
        let m = self.total_mass();
        let mut x = [0.0; 3];
        let mut v = [0.0; 3];
        for i in 0..self.len() {
            for k in 0..3 {
                x[k] += self.mass[i] * self.pos[i][k];
                v[k] += self.mass[i] * self.vel[i][k];
            }
        }
        for k in 0..3 {
            x[k] /= m;
            v[k] /= m;
        }
        (x, v)
    }

    /// Moves the particles so that the centre of mass is at rest at the origin.
    pub fn to_center_of_mass_frame(&mut self) {
        let (x, v) = self.center_of_mass();
        self.shift(x.map(|c| -c), v.map(|c| -c));
    }

    /// Adds `dx` to every position and `dv` to every velocity.
    pub fn shift(&mut self, dx: [f64; 3], dv: [f64; 3]) {
        for p in &mut self.pos {
            for k in 0..3 {
                p[k] += dx[k];
            }
        }
        for v in &mut self.vel {
            for k in 0..3 {
                v[k] += dv[k];
            }
        }
    }

    /// Total momentum.
    pub fn momentum(&self) -> [f64; 3] {
        let mut p = [0.0; 3];
        for i in 0..self.len() {
            for k in 0..3 {
                p[k] += self.mass[i] * self.vel[i][k];
            }
        }
        p
    }

    /// Total kinetic energy.
    pub fn kinetic_energy(&self) -> f64 {
        (0..self.len())
            .map(|i| {
                let v = self.vel[i];
                0.5 * self.mass[i] * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
            })
            .sum()
    }

    /// Radius around `center` that holds half the mass of the particles selected by `keep`.
    pub fn half_mass_radius(&self, center: [f64; 3], keep: impl Fn(usize) -> bool) -> f64 {
        let mut rm: Vec<(f64, f64)> = (0..self.len())
            .filter(|&i| keep(i))
            .map(|i| (dist(self.pos[i], center), self.mass[i]))
            .collect();
        rm.sort_by(|a, b| a.0.total_cmp(&b.0));
        let half = 0.5 * rm.iter().map(|x| x.1).sum::<f64>();
        let mut acc = 0.0;
        for (r, m) in rm {
            acc += m;
            if acc >= half {
                return r;
            }
        }
        0.0
    }
}

/// Euclidean distance of two points.
pub fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}
