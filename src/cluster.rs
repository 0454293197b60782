//! `deepgalaxy cluster`: the paper's fully unsupervised path over a latent index — spectral
//! clustering of the kNN graph (number of clusters from the eigengap unless given), cluster
//! labels as CSV, and latent maps (PCA, optionally t-SNE) coloured by cluster and by class.

use std::path::{Path, PathBuf};

use deepgalaxy_runtime::analysis::cluster::{
    adjusted_rand_index, spectral_clustering, SpectralConfig,
};
use deepgalaxy_runtime::analysis::projection::{pca_2d, tsne_2d, TsneConfig};
use deepgalaxy_runtime::drawing::latent_map::{write_latent_map, Colouring, MapStyle};
use deepgalaxy_runtime::library::index::LatentIndex;

/// Cluster a latent index without labels (spectral clustering).
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The latent index (from `deepgalaxy index`).
    #[arg(long)]
    pub index: PathBuf,
    /// Folder for clusters.csv and the latent maps.
    #[arg(long)]
    pub output: PathBuf,
    /// Number of clusters; chosen from the largest eigengap when absent.
    #[arg(long)]
    pub clusters: Option<usize>,
    /// Neighbours per latent in the kNN graph.
    #[arg(long, default_value_t = SpectralConfig::default().neighbours)]
    pub neighbours: usize,
    /// Also draw t-SNE maps (slower than PCA).
    #[arg(long)]
    pub tsne: bool,
    /// Seed of the subsample and k-means.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `cluster`.
pub fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    let index = LatentIndex::load(&args.index, None)?;
    let config = SpectralConfig {
        neighbours: args.neighbours,
        clusters: args.clusters,
        seed: args.seed,
        ..SpectralConfig::default()
    };
    let c = spectral_clustering(index.vectors(), index.dim(), &config)?;
    let chosen = if args.clusters.is_some() {
        "given"
    } else {
        "largest eigengap"
    };
    println!(
        "{} latents in {} clusters ({chosen})",
        index.len(),
        c.clusters
    );
    let labels: Vec<Option<u32>> = index.entries().iter().map(|e| e.label).collect();
    if labels.iter().all(Option::is_some) {
        let classes: Vec<usize> = labels.iter().map(|l| l.unwrap_or(0) as usize).collect();
        let ari = adjusted_rand_index(&c.labels, &classes)?;
        println!("adjusted Rand index against the timescale classes: {ari:.3}");
    }
    write_csv(&args.output.join("clusters.csv"), &index, &c.labels)?;
    let mut maps = vec![("pca", pca_map(&index)?)];
    if args.tsne {
        maps.push((
            "tsne",
            (
                ["t-SNE 1".to_string(), "t-SNE 2".to_string()],
                tsne_2d(index.vectors(), index.dim(), &TsneConfig::default())?,
            ),
        ));
    }
    for (name, ([x, y], points)) in &maps {
        let style = |what: &str| MapStyle {
            title: format!("Latent map ({}) by {what}", name.to_uppercase()),
            x_label: x.clone(),
            y_label: y.clone(),
            size: (900, 700),
        };
        let path = args.output.join(format!("latent_map_{name}_clusters.png"));
        write_latent_map(
            &path,
            points,
            Colouring::Categories {
                labels: &c.labels,
                name: "cluster",
            },
            &style("cluster"),
        )?;
        println!("wrote {}", path.display());
        if labels.iter().all(Option::is_some) {
            let values: Vec<f64> = labels.iter().map(|l| f64::from(l.unwrap_or(0))).collect();
            let path = args.output.join(format!("latent_map_{name}_classes.png"));
            write_latent_map(
                &path,
                points,
                Colouring::Values {
                    values: &values,
                    name: "class",
                },
                &style("timescale class"),
            )?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The 2-D PCA of the index with axis labels giving the explained variance.
fn pca_map(index: &LatentIndex) -> anyhow::Result<([String; 2], Vec<[f64; 2]>)> {
    let (pca, points) = pca_2d(index.vectors(), index.dim())?;
    let axis = |i: usize| {
        format!(
            "PC {} ({:.1}%)",
            i + 1,
            100.0 * pca.explained_variance_ratio[i]
        )
    };
    Ok(([axis(0), axis(1)], points))
}

fn write_csv(path: &Path, index: &LatentIndex, clusters: &[usize]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id_str", "file_loc", "label", "t_myr", "cluster"])?;
    for (e, c) in index.entries().iter().zip(clusters) {
        w.write_record([
            e.id_str.clone(),
            e.file.clone(),
            e.label.map(|l| l.to_string()).unwrap_or_default(),
            e.t_myr.map(|t| t.to_string()).unwrap_or_default(),
            c.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    deepgalaxy_core::io::write_atomic(path, |f| std::io::Write::write_all(f, &bytes))?;
    println!("wrote {}", path.display());
    Ok(())
}
