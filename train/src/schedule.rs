//! Learning-rate schedules, as a function of the optimizer step.

use serde::{Deserialize, Serialize};

/// How the learning rate evolves; `warmup` linear steps from 0 come first for every kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Base learning rate.
    pub lr: f64,
    /// Shape after warm-up.
    pub kind: ScheduleKind,
    /// Linear warm-up steps (0 = none).
    pub warmup: u64,
}

/// The shape of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum ScheduleKind {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every_epochs` epochs.
    Step {
        /// Epochs between decays.
        every_epochs: u64,
        /// Decay factor.
        gamma: f64,
    },
    /// Cosine from the base rate down to `min_lr` at the end of the run.
    Cosine {
        /// Final rate.
        min_lr: f64,
    },
}

impl ScheduleKind {
    /// The step schedule of a run of `epochs` epochs: the rate halves every quarter of the run.
    pub fn step_for(epochs: usize) -> ScheduleKind {
        ScheduleKind::Step {
            every_epochs: (epochs as u64 / 4).max(1),
            gamma: 0.5,
        }
    }
}

impl Schedule {
    /// The learning rate for optimizer step `step` (0-based) of a run of `total` steps with
    /// `per_epoch` steps per epoch.
    pub fn lr_at(&self, step: u64, per_epoch: u64, total: u64) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let s = step - self.warmup;
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Step {
                every_epochs,
                gamma,
            } => {
                let every = (every_epochs * per_epoch).max(1);
                self.lr * gamma.powi((step / every).min(i32::MAX as u64) as i32)
            }
            ScheduleKind::Cosine { min_lr } => {
                let span = total.saturating_sub(self.warmup).max(1);
                let frac = (s.min(span)) as f64 / span as f64;
                min_lr + 0.5 * (self.lr - min_lr) * (1.0 + (std::f64::consts::PI * frac).cos())
            }
        }
    }
}

impl crate::distributed::Parallel {
    /// The schedule a run on `self.ranks` ranks follows: the base rate scaled as
    /// `lr_scaling` says, and the warm-up the longer of the schedule's steps and
    /// `warmup_epochs` epochs of `per_epoch` steps.
    pub fn schedule(&self, base: &Schedule, per_epoch: u64) -> Schedule {
        let epochs = (self.warmup_epochs * per_epoch as f64).round() as u64;
        Schedule {
            lr: base.lr * self.lr_scaling.factor(self.ranks),
            warmup: base.warmup.max(epochs),
            kind: base.kind.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_have_their_shapes() {
        let c = Schedule {
            lr: 0.1,
            kind: ScheduleKind::Constant,
            warmup: 4,
        };
        assert_eq!(
            (c.lr_at(0, 5, 50), c.lr_at(3, 5, 50), c.lr_at(100, 5, 50)),
            (0.025, 0.1, 0.1)
        );
        let s = Schedule {
            lr: 1.0,
            kind: ScheduleKind::Step {
                every_epochs: 2,
                gamma: 0.5,
            },
            warmup: 0,
        };
        assert_eq!(
            (s.lr_at(9, 5, 50), s.lr_at(10, 5, 50), s.lr_at(25, 5, 50)),
            (1.0, 0.5, 0.25)
        );
        let k = Schedule {
            lr: 1.0,
            kind: ScheduleKind::Cosine { min_lr: 0.0 },
            warmup: 0,
        };
        assert_eq!(k.lr_at(0, 5, 10), 1.0);
        assert!((k.lr_at(5, 5, 10) - 0.5).abs() < 1e-12);
        assert!(k.lr_at(10, 5, 10).abs() < 1e-12 && k.lr_at(50, 5, 10).abs() < 1e-12);
    }

    #[test]
    fn ranks_scale_the_rate_and_warm_up_over_epochs() {
        use crate::distributed::{LrScaling, Parallel};
        let base = Schedule {
            lr: 0.5,
            kind: ScheduleKind::Constant,
            warmup: 3,
        };
        let p = Parallel {
            ranks: 4,
            lr_scaling: LrScaling::Linear,
            warmup_epochs: 1.5,
            ..Parallel::default()
        };
        let s = p.schedule(&base, 10);
        assert_eq!((s.lr, s.warmup), (2.0, 15));
        assert_eq!(
            (s.lr_at(0, 10, 100), s.lr_at(14, 10, 100)),
            (2.0 / 15.0, 2.0)
        );
        let sqrt = Parallel {
            lr_scaling: LrScaling::Sqrt,
            ..p
        }
        .schedule(&base, 1);
        assert_eq!((sqrt.lr, sqrt.warmup), (1.0, 3));
    }
}
