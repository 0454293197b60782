//! Two-dimensional maps of the latent space (the paper's latent visualisation): PCA, exact and
//! deterministic; and t-SNE through the maintained `bhtsne` crate (Barnes-Hut), which shows
//! local neighbourhoods better but distorts global distances. [`crate::drawing::latent_map`] draws them.

use crate::Result;
use deepgalaxy_core::Error;
use faer::{Mat, Side};

/// A principal component analysis of latents.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Latent dimension.
    pub dim: usize,
    /// Mean latent, subtracted before projecting.
    pub mean: Vec<f64>,
    /// Principal axes, largest variance first, `dim` values each, one after another; each is
    /// a unit vector whose largest-magnitude entry is positive (a deterministic sign).
    pub components: Vec<f64>,
    /// Variance along each principal axis (population variance, divided by N).
    pub explained_variance: Vec<f64>,
    /// Share of the total variance along each axis (0 when all latents are equal).
    pub explained_variance_ratio: Vec<f64>,
}

impl Pca {
    /// Fits `n_components` principal axes to `vectors.len() / dim` latents, from the
    /// eigendecomposition of their covariance matrix (faer, dense `dim x dim`).
    pub fn fit(vectors: &[f32], dim: usize, n_components: usize) -> Result<Pca> {
        check_vectors(vectors, dim, 2)?;
        if n_components == 0 || n_components > dim {
            return Err(Error::setting(
                "PCA components",
                format!("{n_components} components of {dim}-D latents"),
            )
            .into());
        }
        let n = vectors.len() / dim;
        let mut mean = vec![0.0; dim];
        for v in vectors.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(v) {
                *m += f64::from(x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = Mat::<f64>::zeros(dim, dim);
        let mut centred = vec![0.0; dim];
        for v in vectors.chunks_exact(dim) {
            for ((c, &x), m) in centred.iter_mut().zip(v).zip(&mean) {
                *c = f64::from(x) - m;
            }
            for i in 0..dim {
                for j in 0..=i {
                    cov[(i, j)] += centred[i] * centred[j];
                }
            }
        }
        for i in 0..dim {
            for j in 0..=i {
                let c = cov[(i, j)] / n as f64;
                cov[(i, j)] = c;
                cov[(j, i)] = c;
            }
        }
        let eig = cov
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| Error::setting("PCA", format!("eigensolver failed: {e:?}")))?;
        let values: Vec<f64> = eig.S().column_vector().iter().copied().collect();
        let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
        let u = eig.U();
        let mut components = Vec::with_capacity(n_components * dim);
        let mut explained_variance = Vec::with_capacity(n_components);
        // ascending eigenvalues: the last columns hold the largest variances
        for c in (dim - n_components..dim).rev() {
            let mut axis: Vec<f64> = (0..dim).map(|i| u[(i, c)]).collect();
            let big = axis
                .iter()
                .fold(0.0f64, |a, &b| if b.abs() > a.abs() { b } else { a });
            if big < 0.0 {
                axis.iter_mut().for_each(|x| *x = -*x);
            }
            components.extend(axis);
            explained_variance.push(values[c].max(0.0));
        }
        let explained_variance_ratio = explained_variance
            .iter()
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect();
        Ok(Pca {
            dim,
            mean,
            components,
            explained_variance,
            explained_variance_ratio,
        })
    }

    /// Coordinates of latents along the principal axes: per latent, one value per component.
    pub fn transform(&self, vectors: &[f32]) -> Result<Vec<f64>> {
        check_vectors(vectors, self.dim, 0)?;
        let k = self.components.len() / self.dim;
        let mut out = Vec::with_capacity(vectors.len() / self.dim * k);
        for v in vectors.chunks_exact(self.dim) {
            for axis in self.components.chunks_exact(self.dim) {
                out.push(
                    v.iter()
                        .zip(&self.mean)
                        .zip(axis)
                        .map(|((&x, m), a)| (f64::from(x) - m) * a)
                        .sum(),
                );
            }
        }
        Ok(out)
    }
}

/// The 2-D PCA map of latents, with the fitted PCA (for its explained variance ratios).
pub fn pca_2d(vectors: &[f32], dim: usize) -> Result<(Pca, Vec<[f64; 2]>)> {
    let pca = Pca::fit(vectors, dim, 2)?;
    let xy = pca.transform(vectors)?;
    Ok((pca, xy.chunks_exact(2).map(|p| [p[0], p[1]]).collect()))
}

/// Settings of [`tsne_2d`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TsneConfig {
    /// Perplexity, the effective number of neighbours (default 30; needs at least
    /// `3 * perplexity + 1` latents).
    pub perplexity: f32,
    /// Gradient-descent epochs (default 1000).
    pub epochs: usize,
    /// Barnes-Hut accuracy, greater than 0; smaller is more exact and slower (default 0.5).
    pub theta: f32,
}

impl Default for TsneConfig {
    fn default() -> Self {
        TsneConfig {
            perplexity: 30.0,
            epochs: 1000,
            theta: 0.5,
        }
    }
}

/// The 2-D t-SNE map of latents (Euclidean distances, Barnes-Hut, `bhtsne` crate). The
/// starting layout is the PCA map scaled to a standard deviation of 1e-4 along its first axis
/// (as scikit-learn's `init="pca"`), not a random one, so repeated runs start alike; the
/// parallel gradient can still differ in the last bits between runs.
pub fn tsne_2d(vectors: &[f32], dim: usize, config: &TsneConfig) -> Result<Vec<[f64; 2]>> {
    check_vectors(vectors, dim, 2)?;
    let n = vectors.len() / dim;
    let p = config.perplexity;
    if !(p.is_finite() && p > 0.0 && config.theta.is_finite() && config.theta > 0.0) {
        return Err(Error::setting(
            "t-SNE",
            format!("perplexity {p} and theta {} must be positive", config.theta),
        )
        .into());
    }
    // bhtsne asks for 3 * perplexity neighbours per point (and panics without them)
    if n - 1 < 3 * (p as usize) + 1 {
        return Err(Error::setting(
            "t-SNE perplexity",
            format!(
                "{p} needs more than {} latents, there are {n}; lower the perplexity to at most {}",
                3 * (p as usize) + 1,
                (n.saturating_sub(2) / 3).max(1)
            ),
        )
        .into());
    }
    let (_, pca) = pca_2d(vectors, dim)?;
    let sd = (pca.iter().map(|q| q[0] * q[0]).sum::<f64>() / n as f64).sqrt();
    let scale = if sd > 0.0 { 1e-4 / sd } else { 0.0 };
    let init: Vec<f32> = pca
        .iter()
        .flat_map(|q| [(q[0] * scale) as f32, (q[1] * scale) as f32])
        .collect();
    let samples: Vec<&[f32]> = vectors.chunks_exact(dim).collect();
    let mut tsne = bhtsne::tSNE::<f32, &[f32], 2>::new(&samples);
    tsne.perplexity(p)
        .epochs(config.epochs)
        .initial_embedding(init)
        .barnes_hut(config.theta, |a, b| {
            crate::library::search::squared_distance(a, b).sqrt()
        });
    let y = tsne.embedding();
    if y.iter().any(|v| !v.is_finite()) {
        return Err(Error::setting("t-SNE", "the embedding diverged (NaN)").into());
    }
    Ok(y.chunks_exact(2)
        .map(|q| [f64::from(q[0]), f64::from(q[1])])
        .collect())
}

fn check_vectors(vectors: &[f32], dim: usize, min: usize) -> Result<()> {
    if dim == 0 || !vectors.len().is_multiple_of(dim) {
        return Err(Error::setting(
            "latent vectors",
            format!("{} floats are not whole vectors of {dim}", vectors.len()),
        )
        .into());
    }
    if vectors.len() / dim < min {
        return Err(Error::setting(
            "latent vectors",
            format!("{} latents: need at least {min}", vectors.len() / dim),
        )
        .into());
    }
    if vectors.iter().any(|v| !v.is_finite()) {
        return Err(Error::setting("latent vectors", "NaN or infinite values").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    fn unit(v: Vec<f64>) -> Vec<f64> {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn pca_recovers_a_line() {
        let dim = 16;
        let dir = unit((0..dim).map(|i| (i as f64 - 7.0) / 3.0).collect());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let v: Vec<f32> = (0..300)
            .flat_map(|_| {
                let t: f64 = rng.random::<f64>() * 10.0 - 5.0;
                dir.iter()
                    .map(move |d| (2.0 + t * d) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let pca = Pca::fit(&v, dim, 2).unwrap();
        // all the variance on the first axis (f32 rounding leaves ~1e-14)
        assert!(
            pca.explained_variance_ratio[0] > 1.0 - 1e-9,
            "{:?}",
            pca.explained_variance_ratio
        );
        assert!(pca.explained_variance_ratio[1] < 1e-9);
        assert!((dot(&pca.components[..dim], &dir).abs() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn pca_recovers_a_plane_and_its_variances() {
        let dim = 8;
        let u = unit(vec![1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
        let w = unit(vec![1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert!(dot(&u, &w).abs() < 1e-15);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (su, sw) = (
            Normal::new(0.0, 3.0).unwrap(),
            Normal::new(0.0, 1.0).unwrap(),
        );
        let mut coords = Vec::new();
        let v: Vec<f32> = (0..2000)
            .flat_map(|_| {
                let (a, b): (f64, f64) = (su.sample(&mut rng), sw.sample(&mut rng));
                coords.push((a, b));
                (0..dim)
                    .map(|i| (a * u[i] + b * w[i]) as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let (pca, xy) = pca_2d(&v, dim).unwrap();
        let r = &pca.explained_variance_ratio;
        assert!(r[0] + r[1] > 1.0 - 1e-9, "{r:?}");
        // the axes are u and w (up to sign), and the ratio is the sample variance ratio
        assert!((dot(&pca.components[..dim], &u).abs() - 1.0).abs() < 1e-3);
        assert!((dot(&pca.components[dim..], &w).abs() - 1.0).abs() < 1e-3);
        let var = |f: &dyn Fn(&(f64, f64)) -> f64| {
            let m = coords.iter().map(f).sum::<f64>() / coords.len() as f64;
            coords.iter().map(|c| (f(c) - m).powi(2)).sum::<f64>() / coords.len() as f64
        };
        let (va, vb) = (var(&|c| c.0), var(&|c| c.1));
        assert!(
            (r[0] - va / (va + vb)).abs() < 2e-3,
            "{} vs {}",
            r[0],
            va / (va + vb)
        );
        // projected coordinates have the explained variances
        let m = xy.iter().map(|p| p[0]).sum::<f64>() / xy.len() as f64;
        let v0 = xy.iter().map(|p| (p[0] - m).powi(2)).sum::<f64>() / xy.len() as f64;
        assert!((v0 - pca.explained_variance[0]).abs() < 1e-6 * v0);
    }

    #[test]
    fn pca_rejects_bad_input() {
        assert!(Pca::fit(&[1.0, 2.0], 2, 2).is_err()); // one latent
        assert!(Pca::fit(&[1.0, 2.0, 3.0, 4.0], 2, 3).is_err());
        assert!(Pca::fit(&[1.0, f32::NAN, 3.0, 4.0], 2, 2).is_err());
        // identical latents: no variance, ratios 0, no NaN
        let p = Pca::fit(&[1.0; 8], 2, 2).unwrap();
        assert_eq!(p.explained_variance_ratio, vec![0.0, 0.0]);
    }

    /// Three separated blobs stay separated in the t-SNE map: every point's nearest map
    /// neighbour belongs to its own blob.
    #[test]
    fn tsne_keeps_blobs_apart() {
        let dim = 16;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let noise = Normal::new(0.0f32, 0.2).unwrap();
        let mut v = Vec::new();
        let mut truth = Vec::new();
        for i in 0..90 {
            let b = i % 3;
            for d in 0..dim {
                v.push(if d == b { 5.0 } else { 0.0 } + noise.sample(&mut rng));
            }
            truth.push(b);
        }
        let config = TsneConfig {
            perplexity: 10.0,
            epochs: 500,
            theta: 0.5,
        };
        let y = tsne_2d(&v, dim, &config).unwrap();
        assert_eq!(y.len(), 90);
        for i in 0..90 {
            let nearest = (0..90)
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let d = |j: usize| (y[i][0] - y[j][0]).powi(2) + (y[i][1] - y[j][1]).powi(2);
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            assert_eq!(truth[nearest], truth[i], "point {i}");
        }
        let too_few = TsneConfig {
            perplexity: 30.0,
            ..config
        };
        let e = tsne_2d(&v, dim, &too_few).unwrap_err().to_string();
        assert!(e.contains("lower the perplexity"), "{e}");
    }
}
