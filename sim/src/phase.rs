//! Merger phases from the galaxies' tracked centres: first and later pericentres, and
//! coalescence.
//!
//! Each galaxy's centre is found by shrinking spheres (Power et al. 2003) on its own particles
//! (halo and disk): start from their centre of mass and the sphere holding them all, then
//! repeatedly take the centre of mass of the particles inside a sphere 10% smaller around the
//! last centre, until few particles remain. Unlike the most bound particle it does not jump
//! between particles from step to step, so separation minima are found to within a step.
//! With rigid halos ([`crate::halo`]) a galaxy's centre is its halo's.

use crate::integrate::Simulation;
use crate::particles::{dist, Particles};
use crate::units::TIME_MYR;

/// Particles left inside the sphere (at least; or 1% of the galaxy's) when shrinking stops.
const CORE_PARTICLES: usize = 32;
/// Radius factor per shrinking step.
const SHRINK: f64 = 0.9;

/// Centre of galaxy `galaxy` by shrinking spheres; `None` when it has no particles.
pub fn shrinking_sphere_centre(p: &Particles, galaxy: u8) -> Option<[f64; 3]> {
    let mut members: Vec<usize> = (0..p.len()).filter(|&i| p.galaxy[i] == galaxy).collect();
    let stop = CORE_PARTICLES.max(members.len() / 100);
    let mut centre = centre_of_mass(p, &members)?;
    let mut radius = members
        .iter()
        .map(|&i| dist(p.pos[i], centre))
        .fold(0.0, f64::max);
    while members.len() > stop {
        radius *= SHRINK;
        let inside: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| dist(p.pos[i], centre) <= radius)
            .collect();
        match centre_of_mass(p, &inside) {
            Some(c) if inside.len() >= stop => {
                centre = c;
                members = inside;
            }
            _ => break,
        }
    }
    Some(centre)
}

fn centre_of_mass(p: &Particles, members: &[usize]) -> Option<[f64; 3]> {
    let mass: f64 = members.iter().map(|&i| p.mass[i]).sum();
    if members.is_empty() || mass <= 0.0 {
        return None;
    }
    let mut c = [0.0; 3];
    for &i in members {
        for k in 0..3 {
            c[k] += p.mass[i] * p.pos[i][k];
        }
    }
    Some(c.map(|x| x / mass))
}

/// Distance between the two galaxies' centres, or `None` when one has no particles. With
/// rigid halos the centres are the halos'.
pub fn separation(sim: &Simulation) -> Option<f64> {
    if let Some(h) = &sim.halos {
        return match &h.bodies[..] {
            [a, b] => Some(dist(a.pos, b.pos)),
            _ => None,
        };
    }
    Some(dist(
        shrinking_sphere_centre(&sim.particles, 0)?,
        shrinking_sphere_centre(&sim.particles, 1)?,
    ))
}

/// The separation of the galaxies' centres through a run, one sample per step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Track {
    /// Times (internal units), increasing.
    pub time: Vec<f64>,
    /// Centre separations at those times (kpc).
    pub separation: Vec<f64>,
}

/// The phases found in a [`Track`].
#[derive(Clone, Debug, PartialEq)]
pub struct Phases {
    /// Times of the pericentres, first first (internal units); empty when the galaxies never
    /// passed each other.
    pub pericenters: Vec<f64>,
    /// Separations at those pericentres (kpc).
    pub pericenter_distances: Vec<f64>,
    /// Time after which the separation stays below the coalescence threshold; `None` when it
    /// does not within the run.
    pub coalescence: Option<f64>,
}

/// A separation minimum is a pericentre when the galaxies were at least this factor times
/// as far apart (and [`MIN_RISE_KPC`] farther) since the last pericentre, and move that far
/// apart again before coming closer: the jitter of two merged centres, or of one centre's
/// estimate, is not a passage.
pub const MIN_RISE: f64 = 2.0;
/// How long (Myr) the centres must stay within the coalescence separation, up to the end of
/// the run, for the galaxies to count as coalesced.
pub const MIN_MERGED_MYR: f64 = 25.0;

/// Half-width (Myr) of the window around a separation minimum through which the pericentre
/// distance is fitted (see [`Track::phases`]).
pub const FIT_MYR: f64 = 2.5;

/// Least rise in kpc around a pericentre (see [`MIN_RISE`]).
pub const MIN_RISE_KPC: f64 = 2.0;

impl Track {
    /// Adds a sample.
    pub fn push(&mut self, time: f64, separation: f64) {
        self.time.push(time);
        self.separation.push(separation);
    }

    /// Separation at time `t`, linearly interpolated (clamped to the ends).
    pub fn separation_at(&self, t: f64) -> Option<f64> {
        let (time, sep) = (&self.time, &self.separation);
        let last = time.len().checked_sub(1)?;
        let i = time.partition_point(|&x| x < t);
        if i == 0 {
            return Some(sep[0]);
        }
        if i > last {
            return Some(sep[last]);
        }
        let f = (t - time[i - 1]) / (time[i] - time[i - 1]);
        Some(sep[i - 1] + f * (sep[i] - sep[i - 1]))
    }

    /// The sample of the first pericentre once it is confirmed: the closest approach so far,
    /// after which the galaxies have moved apart to [`MIN_RISE`] times that distance (and
    /// [`MIN_RISE_KPC`] more), having come from at least as far. The same sample as the first
    /// of [`Track::phases`] when that one is a passage; usable while the run goes on.
    pub fn first_passage(&self) -> Option<usize> {
        let d = &self.separation;
        let start = *d.first()?;
        // the closest approach so far, and the farthest apart before it
        let (mut low, mut top, mut far) = (0, start, start);
        for (i, &x) in d.iter().enumerate().skip(1) {
            top = top.max(x);
            if x < d[low] {
                (low, far) = (i, top);
                continue;
            }
            let need = (d[low] * MIN_RISE).max(d[low] + MIN_RISE_KPC);
            if low > 0 && x >= need && far >= need {
                return Some(low);
            }
        }
        None
    }

    /// The closest approach around sample `i`, a separation minimum: the vertex of the
    /// least-squares parabola through the squared separations within [`FIT_MYR`] of it (the
    /// squared distance of a passage is a parabola in time near its minimum). The sampled
    /// minimum itself sits below the true one by the centre estimates' jitter; the fit
    /// averages it out. The sampled minimum when the samples do not make a minimum.
    pub fn closest_near(&self, i: usize) -> f64 {
        let (t0, d) = (self.time[i], &self.separation);
        let window = FIT_MYR / TIME_MYR;
        let near: Vec<(f64, f64)> = (0..d.len())
            .filter(|&j| (self.time[j] - t0).abs() <= window)
            .map(|j| (self.time[j] - t0, d[j] * d[j]))
            .collect();
        match fit_parabola(&near) {
            Some((a, b, c)) if near.len() >= 5 && c > 0.0 && (b / (2.0 * c)).abs() <= window => {
                (a - b * b / (4.0 * c)).max(0.0).sqrt()
            }
            _ => d[i],
        }
    }

    /// The pericentres and coalescence, with `coalescence_kpc` the separation below which the
    /// galaxies have merged once they stay there to the end of the run, for at least
    /// [`MIN_MERGED_MYR`] (a dip in the last few Myr is not a coalescence). A fall that ends in
    /// coalescence without a passage has its one pericentre where the fall stops.
    pub fn phases(&self, coalescence_kpc: f64) -> Phases {
        let d = &self.separation;
        let n = d.len();
        // the first sample from which the separation stays below the threshold
        let end_time = self.time.last().copied().unwrap_or_default();
        let merged_from = (0..n)
            .rev()
            .take_while(|&i| d[i] < coalescence_kpc)
            .last()
            .filter(|&i| end_time - self.time[i] >= MIN_MERGED_MYR / TIME_MYR);
        let end = merged_from.unwrap_or(n);
        let mut found = Vec::new();
        // the farthest apart since the last pericentre
        let mut before = d.first().copied().unwrap_or_default();
        let mut i = 1;
        while i < end && i + 1 < n {
            before = before.max(d[i]);
            if d[i] < d[i - 1] && d[i] <= d[i + 1] {
                let need = (d[i] * MIN_RISE).max(d[i] + MIN_RISE_KPC);
                // a passage: the galaxies came from far enough and move apart far enough
                // before coming closer than here
                if let Some(j) = (i + 1..n).find(|&j| d[j] >= need || d[j] < d[i]) {
                    if before >= need && d[j] >= need {
                        found.push(i);
                        before = d[j];
                        i = j;
                        continue;
                    }
                }
            }
            i += 1;
        }
        if found.is_empty() {
            if let Some(m) = merged_from {
                found.extend((m.max(1)..n.saturating_sub(1)).find(|&i| d[i] <= d[i + 1]));
            }
        }
        Phases {
            pericenters: found.iter().map(|&i| self.time[i]).collect(),
            pericenter_distances: found.iter().map(|&i| self.closest_near(i)).collect(),
            coalescence: merged_from.map(|i| self.time[i]),
        }
    }
}

/// The least-squares `y = a + b x + c x^2` through `points`, or `None` when they do not fix one
/// (fewer than three distinct x).
fn fit_parabola(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    // the normal equations, three unknowns: Cramer's rule, no linear-algebra crate needed
    let mut s = [0.0f64; 5];
    let mut t = [0.0f64; 3];
    for &(x, y) in points {
        let mut p = 1.0;
        for (k, sk) in s.iter_mut().enumerate() {
            *sk += p;
            if k < 3 {
                t[k] += p * y;
            }
            p *= x;
        }
    }
    let m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(m);
    if d.abs() <= 1e-12 * m[0][0] * m[1][1] * m[2][2] {
        return None;
    }
    let column = |k: usize| {
        let mut mk = m;
        for (row, &tv) in mk.iter_mut().zip(&t) {
            row[k] = tv;
        }
        det(mk) / d
    };
    Some((column(0), column(1), column(2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(f: impl Fn(f64) -> f64, n: usize) -> Track {
        let mut t = Track::default();
        for i in 0..n {
            let x = i as f64;
            t.push(x, f(x));
        }
        t
    }

    #[test]
    fn the_fitted_pericentre_sees_through_the_centres_jitter() {
        // a passage at 1 kpc and 300 km/s (0.31 kpc/Myr), sampled every 0.3 Myr, each centre
        // separation off by up to 0.15 kpc (deterministic pseudo-noise)
        let (rp, v) = (1.0, 0.31);
        let mut track = Track::default();
        for k in -200..=200 {
            let t_myr = 0.3 * k as f64;
            let jitter = 0.15 * (1.7 * k as f64).sin();
            let d = (rp * rp + (v * t_myr).powi(2)).sqrt() + jitter;
            track.push(t_myr / TIME_MYR, d);
        }
        // far enough apart at both ends for the minimum to be a passage
        let p = track.phases(0.1);
        assert_eq!(p.pericenters.len(), 1, "{p:?}");
        let sampled = track
            .separation
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        assert!(
            sampled < 0.9 * rp,
            "the sampled minimum is biased low: {sampled}"
        );
        let fitted = p.pericenter_distances[0];
        assert!(
            (fitted / rp - 1.0).abs() < 0.05,
            "fitted {fitted} kpc for {rp}"
        );
        // an exact parabola in d^2 is fitted exactly
        assert_eq!(
            fit_parabola(&[(-1.0, 4.0), (0.0, 2.0), (1.0, 6.0), (2.0, 16.0)]).map(|(a, b, c)| (
                (a * 1e9).round(),
                (b * 1e9).round(),
                (c * 1e9).round()
            )),
            Some((2e9, 1e9, 3e9))
        );
        assert_eq!(fit_parabola(&[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]), None);
    }

    #[test]
    fn passages_and_coalescence_of_a_decaying_orbit() {
        // minima at 100 (2 kpc) and 250 (1 kpc), apocentres between, merged below 0.5 from 319
        let sep = |t: f64| -> f64 {
            if t <= 100.0 {
                2.0 + 0.3 * (100.0 - t)
            } else if t <= 175.0 {
                2.0 + 0.2 * (t - 100.0)
            } else if t <= 250.0 {
                17.0 - 0.2133 * (t - 175.0)
            } else if t <= 300.0 {
                1.0 + 0.05 * (t - 250.0)
            } else if t <= 320.0 {
                3.5 - 0.16 * (t - 300.0)
            } else {
                0.2 + 0.05 * ((t - 320.0) * 0.7).sin()
            }
        };
        let p = track(sep, 400).phases(0.5);
        assert_eq!(p.pericenters, vec![100.0, 250.0]);
        assert!((p.pericenter_distances[0] - 2.0).abs() < 1e-9);
        assert_eq!(p.coalescence, Some(319.0));
        let t = track(sep, 400);
        assert!((t.separation_at(99.5).unwrap() - 2.15).abs() < 1e-9);
        assert_eq!(t.first_passage(), Some(100));
        // while the run goes on: not before the galaxies have moved apart again
        let mut partial = Track::default();
        for i in 0..=109 {
            partial.push(t.time[i], t.separation[i]);
        }
        assert_eq!(partial.first_passage(), None);
        partial.push(t.time[110], t.separation[110]);
        assert_eq!(partial.first_passage(), Some(100));
    }

    #[test]
    fn a_head_on_fall_that_merges_at_once_has_one_pericentre() {
        let p = track(|t| (30.0 - 0.2 * t).max(0.1), 300).phases(0.5);
        assert_eq!(p.coalescence, Some(148.0));
        assert_eq!(p.pericenters, vec![150.0]);
        assert_eq!(
            track(|t| (30.0 - 0.2 * t).max(0.1), 300).first_passage(),
            None
        );
    }

    #[test]
    fn an_approach_that_never_turns_has_no_pericentre() {
        let p = track(|t| 30.0 - 0.1 * t, 200).phases(0.5);
        assert_eq!(p.pericenters, Vec::<f64>::new());
        assert_eq!(p.coalescence, None);
        // a dip below the threshold in the last few Myr is not a coalescence
        let late = track(|t| if t >= 297.0 { 0.3 } else { 5.0 }, 300).phases(0.5);
        assert_eq!(late.coalescence, None);
    }
}
