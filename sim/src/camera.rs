//! The 14 cameras of the DeepGalaxy dataset: the 6 face and 8 corner directions of a cube.

use crate::ic::{cross, normalize};

/// Number of cameras per snapshot.
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

/// Cameras 0-5 on the faces (+x, -x, +y, -y, +z, -z), cameras 6-13 on the corners
/// (x, y, z signs counting in binary from (-,-,-) to (+,+,+)).
pub fn cube_cameras() -> Vec<Camera> {
    let mut dirs: Vec<[f64; 3]> = vec![
        [1.0, 0.0, 0.0],
        [-1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, -1.0, 0.0],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, -1.0],
    ];
    for k in 0..8 {
        let s = |bit: usize| if k & bit != 0 { 1.0 } else { -1.0 };
        dirs.push([s(4), s(2), s(1)]);
    }
    dirs.into_iter().map(Camera::looking_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourteen_distinct_orthonormal_cameras() {
        let cams = cube_cameras();
        assert_eq!(cams.len(), CAMERAS);
        let dot = |a: [f64; 3], b: [f64; 3]| a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        for (i, c) in cams.iter().enumerate() {
            for v in [c.direction, c.right, c.up] {
                assert!((dot(v, v) - 1.0).abs() < 1e-12);
            }
            assert!(dot(c.direction, c.right).abs() < 1e-12);
            assert!(dot(c.direction, c.up).abs() < 1e-12);
            assert!(dot(c.right, c.up).abs() < 1e-12);
            for d in &cams[..i] {
                assert!(dot(c.direction, d.direction) < 0.99, "cameras {i} repeat");
            }
            // Faces look along one axis, corners along a cube diagonal.
            let axis_parts = c.direction.iter().filter(|x| x.abs() > 1e-9).count();
            assert_eq!(axis_parts, if i < 6 { 1 } else { 3 });
        }
    }
}
