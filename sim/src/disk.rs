//! The shape of a galaxy's disk, to tell a disk that holds together from one that heats: its
//! thickness (rms height above its own plane) and its radial velocity dispersion, both over
//! the disk particles between 1 and 3 scale lengths from its centre, where most of its light
//! is. The plane is the one normal to the disk particles' angular momentum, so a disk is
//! measured the same in any orientation.

use crate::ic::{cross, normalize};
use crate::particles::{Component, Particles};

/// A disk's thickness and radial velocity dispersion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DiskShape {
    /// Root-mean-square height above the disk plane (internal length units).
    pub rms_height: f64,
    /// Root-mean-square radial velocity in the disk plane (internal velocity units).
    pub radial_dispersion: f64,
    /// Disk particles measured.
    pub particles: usize,
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

impl DiskShape {
    /// The shape of the disk particles of `p` (all galaxies' disks together: call it on one
    /// galaxy) with scale length `scale_length`, measured from their centre of mass; `None`
    /// without disk particles in the band.
    pub fn measure(p: &Particles, scale_length: f64) -> Option<DiskShape> {
        let disk: Vec<usize> = (0..p.len())
            .filter(|&i| p.component[i] == Component::Disk)
            .collect();
        let mass: f64 = disk.iter().map(|&i| p.mass[i]).sum();
        if disk.is_empty() || mass <= 0.0 {
            return None;
        }
        let mean = |v: &[[f64; 3]]| {
            let mut c = [0.0; 3];
            for &i in &disk {
                for k in 0..3 {
                    c[k] += p.mass[i] * v[i][k] / mass;
                }
            }
            c
        };
        let (x0, v0) = (mean(&p.pos), mean(&p.vel));
        let mut spin = [0.0; 3];
        for &i in &disk {
            let l = cross(sub(p.pos[i], x0), sub(p.vel[i], v0));
            for k in 0..3 {
                spin[k] += p.mass[i] * l[k];
            }
        }
        let axis = normalize(spin);
        let (mut z2, mut vr2, mut n) = (0.0, 0.0, 0usize);
        for &i in &disk {
            let (x, v) = (sub(p.pos[i], x0), sub(p.vel[i], v0));
            let z = dot(x, axis);
            let planar = sub(x, axis.map(|a| a * z));
            let r = dot(planar, planar).sqrt();
            if !(scale_length..=3.0 * scale_length).contains(&r) {
                continue;
            }
            let vr = dot(v, planar) / r;
            z2 += z * z;
            vr2 += vr * vr;
            n += 1;
        }
        (n > 0).then(|| DiskShape {
            rms_height: (z2 / n as f64).sqrt(),
            radial_dispersion: (vr2 / n as f64).sqrt(),
            particles: n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ic::orient;

    /// A ring of disk particles at radius 2 on circular orbits, alternately at heights +-h with
    /// radial velocities +-u, and one halo particle far out that must be ignored.
    fn ring(h: f64, u: f64) -> Particles {
        let mut p = Particles::default();
        for k in 0..16 {
            let phi = std::f64::consts::TAU * k as f64 / 16.0;
            let (c, s) = (phi.cos(), phi.sin());
            let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
            let (vr, vt) = (sign * u, 1.0);
            p.pos.push([2.0 * c, 2.0 * s, sign * h]);
            p.vel.push([vr * c - vt * s, vr * s + vt * c, 0.0]);
            p.mass.push(1.0);
            p.component.push(Component::Disk);
            p.galaxy.push(0);
        }
        p.pos.push([0.0, 0.0, 30.0]);
        p.vel.push([0.0; 3]);
        p.mass.push(5.0);
        p.component.push(Component::Halo);
        p.galaxy.push(0);
        p
    }

    #[test]
    fn a_ring_measures_its_height_and_radial_speeds_in_any_orientation() {
        let mut p = ring(0.1, 0.3);
        let flat = DiskShape::measure(&p, 1.0).unwrap();
        assert_eq!(flat.particles, 16);
        assert!((flat.rms_height - 0.1).abs() < 1e-12, "{flat:?}");
        assert!((flat.radial_dispersion - 0.3).abs() < 1e-12, "{flat:?}");
        orient(&mut p, normalize([0.3, -0.5, 0.8]), 1.1);
        let tilted = DiskShape::measure(&p, 1.0).unwrap();
        assert!((tilted.rms_height - 0.1).abs() < 1e-9, "{tilted:?}");
        assert!((tilted.radial_dispersion - 0.3).abs() < 1e-9, "{tilted:?}");
        // outside the band of 1-3 scale lengths there is nothing to measure
        assert_eq!(DiskShape::measure(&p, 5.0), None);
    }
}
