//! Metrics files of a run: `metrics.jsonl` (one JSON record per epoch, everything) and
//! `metrics.csv` (the headline numbers, for a spreadsheet), rewritten atomically each epoch.

use std::io::Write;
use std::path::Path;

use crate::checkpoint::EpochRecord;
use crate::Result;
use deepgalaxy_core::io::write_atomic;

/// Writes both files for the history so far.
pub fn write_metrics(out: &Path, history: &[EpochRecord]) -> Result<()> {
    write_atomic(&out.join("metrics.jsonl"), |f| {
        for r in history {
            let line = serde_json::to_string(r).map_err(std::io::Error::other)?;
            writeln!(f, "{line}")?;
        }
        Ok(())
    })?;
    write_atomic(&out.join("metrics.csv"), |f| {
        writeln!(
            f,
            "epoch,step,lr,train_loss,train_top1,images_per_sec,val_top1,val_within1,val_within2,val_mae_myr,val_cross_entropy,val_recon_mse,val_vae_recon_mse,val_kl,val_median_abs_myr,val_within_10_myr,val_within_25_myr,val_coverage_1sigma"
        )?;
        for r in history {
            write!(
                f,
                "{},{},{},{},{},{}",
                r.epoch, r.step, r.lr, r.train_loss, r.train_top1, r.images_per_sec
            )?;
            match &r.val {
                Some(v) => writeln!(
                    f,
                    ",{},{},{},{},{},{},{},{},{},{},{},{}",
                    v.top1,
                    v.within1,
                    v.within2,
                    v.mae_myr,
                    v.cross_entropy,
                    v.recon_mse,
                    v.vae_recon_mse,
                    v.kl,
                    v.median_abs_myr,
                    v.within_10_myr,
                    v.within_25_myr,
                    v.coverage_1sigma
                )?,
                None => writeln!(f, ",,,,,,,,,,,,")?,
            }
        }
        Ok(())
    }).map_err(Into::into)
}
