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
    /// Multiply by `gamma` every `every` steps.
    Step {
        /// Steps between decays.
        every: u64,
        /// Decay factor.
        gamma: f64,
    },
    /// Cosine from the base rate down to `min_lr` over `total` steps (after warm-up).
    Cosine {
        /// Steps of the whole run.
        total: u64,
        /// Final rate.
        min_lr: f64,
    },
}

impl Schedule {
    /// The learning rate for optimizer step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let s = step - self.warmup;
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Step { every, gamma } => self.lr * gamma.powi((s / every.max(1)) as i32),
            ScheduleKind::Cosine { total, min_lr } => {
                let span = total.saturating_sub(self.warmup).max(1);
                let frac = (s.min(span)) as f64 / span as f64;
                min_lr + 0.5 * (self.lr - min_lr) * (1.0 + (std::f64::consts::PI * frac).cos())
            }
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
        assert_eq!((c.lr_at(0), c.lr_at(3), c.lr_at(100)), (0.025, 0.1, 0.1));
        let s = Schedule {
            lr: 1.0,
            kind: ScheduleKind::Step {
                every: 10,
                gamma: 0.5,
            },
            warmup: 0,
        };
        assert_eq!((s.lr_at(9), s.lr_at(10), s.lr_at(25)), (1.0, 0.5, 0.25));
        let k = Schedule {
            lr: 1.0,
            kind: ScheduleKind::Cosine {
                total: 10,
                min_lr: 0.0,
            },
            warmup: 0,
        };
        assert_eq!(k.lr_at(0), 1.0);
        assert!((k.lr_at(5) - 0.5).abs() < 1e-12);
        assert!(k.lr_at(10).abs() < 1e-12 && k.lr_at(50).abs() < 1e-12);
    }
}
