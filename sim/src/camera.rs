//! The cameras of a simulated dataset: 14 viewing directions by default (the paper's count),
//! or fewer, spread evenly over the hemisphere above the orbit plane, from face-on to 10
//! degrees above the plane.
//!
//! The particles are optically thin, so a camera and the one opposite it see mirror images of
//! each other; the paper's cube cameras (6 faces, 8 corners) were 7 such pairs, and two of
//! them looked along the galaxies' initial separation. Cameras within 80 degrees of the
//! orbit's pole are at most 160 degrees apart, so no two are near a mirror pair, and the
//! directions keep away from the x axis (along which the galaxies start).

use crate::ic::{cross, normalize};

/// Number of cameras per snapshot by default, and the most a dataset may have: the paper's 14.
pub const CAMERAS: usize = 14;

/// An orthographic camera looking at the origin along `-direction`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// Unit vector from the origin towards the camera.
    pub direction: [f64; 3],
    /// Unit vector of the image's +x axis.
    pub right: [f64; 3],
    /// Unit vector of the image's +y axis (up).
    pub up: [f64; 3],
}

impl Camera {
    /// A camera placed along `direction` (need not be normalised), with up as close to +z
    /// as possible (+y for cameras on the z axis).
    pub fn looking_from(direction: [f64; 3]) -> Camera {
        let d = normalize(direction);
        let world_up = if d[2].abs() > 0.99 {
            [0.0, 1.0, 0.0]
        } else {
            [0.0, 0.0, 1.0]
        };
        let right = normalize(cross(world_up, d));
        let up = cross(d, right);
        Camera {
            direction: d,
            right,
            up,
        }
    }

    /// Image-plane coordinates (right, up) of a point.
    pub fn project(&self, x: [f64; 3]) -> (f64, f64) {
        (dot(x, self.right), dot(x, self.up))
    }
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Least angle between a camera's direction and the x axis (the initial separation), degrees.
pub const MIN_ANGLE_TO_SEPARATION_DEG: f64 = 20.0;

/// Largest angle of a camera from the orbit's pole (+z), degrees.
pub const MAX_POLAR_ANGLE_DEG: f64 = 80.0;

/// `n` cameras (1 to [`CAMERAS`]): a Fibonacci spiral over the cap within
/// [`MAX_POLAR_ANGLE_DEG`] of +z (equal areas per camera), turned about z so that every
/// direction keeps as far from the x axis as it can (at least
/// [`MIN_ANGLE_TO_SEPARATION_DEG`]). Fewer cameras per merger leave room, for the same number
/// of images, for more mergers (e.g. [`crate::merger::Grid::Orbits`]).
pub fn hemisphere_cameras(n: usize) -> Vec<Camera> {
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    let z_min = MAX_POLAR_ANGLE_DEG.to_radians().cos();
    let directions = |turn: f64| -> Vec<[f64; 3]> {
        (0..n)
            .map(|k| {
                let z = 1.0 - (1.0 - z_min) * (k as f64 + 0.5) / n as f64;
                let r = (1.0 - z * z).sqrt();
                let phi = golden * k as f64 + turn;
                [r * phi.cos(), r * phi.sin(), z]
            })
            .collect()
    };
    // the turn that keeps every direction farthest from the x axis, on a 1-degree grid
    let clearance = |dirs: &[[f64; 3]]| {
        dirs.iter()
            .map(|d| d[0].abs().min(1.0).acos())
            .fold(f64::INFINITY, f64::min)
    };
    let turn = (0..360)
        .map(|deg| f64::from(deg).to_radians())
        .max_by(|a, b| clearance(&directions(*a)).total_cmp(&clearance(&directions(*b))))
        .unwrap_or(0.0);
    directions(turn)
        .into_iter()
        .map(Camera::looking_from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_fourteen_orthonormal_cameras_none_opposite_another_or_along_the_separation() {
        for n in 1..=CAMERAS {
            let cams = hemisphere_cameras(n);
            assert_eq!(cams.len(), n);
            let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
            for (i, c) in cams.iter().enumerate() {
                for v in [c.direction, c.right, c.up] {
                    assert!((dot(v, v) - 1.0).abs() < 1e-12);
                }
                assert!(dot(c.direction, c.right).abs() < 1e-12);
                assert!(dot(c.direction, c.up).abs() < 1e-12);
                assert!(dot(c.right, c.up).abs() < 1e-12);
                assert!(
                    c.direction[2] > 0.0,
                    "{n}: camera {i} below the orbit plane"
                );
                let to_x = c.direction[0].abs().acos().to_degrees();
                assert!(
                    to_x >= MIN_ANGLE_TO_SEPARATION_DEG,
                    "{n}: camera {i}: {to_x} degrees from x"
                );
                for (j, d) in cams[..i].iter().enumerate() {
                    let cos = dot(c.direction, d.direction);
                    // distinct (over 30 degrees apart), and far from opposite (a mirror view:
                    // under 145 degrees apart)
                    let angle = cos.clamp(-1.0, 1.0).acos().to_degrees();
                    assert!(
                        (30.0..145.0).contains(&angle),
                        "{n}: cameras {j} and {i}: {angle} degrees"
                    );
                }
            }
        }
        // the default set is the 14 of the first cameras' spiral
        assert_eq!(hemisphere_cameras(CAMERAS).len(), 14);
    }
}
