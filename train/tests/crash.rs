//! A checkpoint survives a process killed at any moment of a save: a child process saves the
//! same run over and over and is killed with SIGKILL at many different points; after each kill
//! one complete checkpoint loads, and its step is never older than the last one seen.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::one_step_run;
use deepgalaxy_train::checkpoint::{checkpoint_dir, load, save};
use deepgalaxy_train::optim::Optimizer;
use rand::{Rng, SeedableRng};

/// Where the child saves (set only in the child's environment).
const CHILD_DIR: &str = "DEEPGALAXY_CRASH_TEST_RUN";

/// Loads the run's checkpoint and saves it again, one step later each time, `rounds` times.
fn save_repeatedly(run: &Path, rounds: usize) {
    let dir = checkpoint_dir(run);
    let ck = load(&dir, &candle_core::Device::Cpu).unwrap();
    let mut state = ck.state;
    let optimizer = Optimizer::load(state.config.optimizer.clone(), state.step, ck.optimizer);
    for _ in 0..rounds {
        state.step += 1;
        save(&dir, &ck.spec, &ck.weights, &optimizer, &state).unwrap();
    }
}

/// The child's side: saves until killed. Run only by the test below, through the test binary.
#[test]
#[ignore = "run as a child process by a_checkpoint_survives_sigkill_at_any_moment_of_a_save"]
fn child_saves_until_killed() {
    if let Ok(run) = std::env::var(CHILD_DIR) {
        save_repeatedly(Path::new(&run), usize::MAX);
    }
}

#[test]
fn a_checkpoint_survives_sigkill_at_any_moment_of_a_save() {
    let tmp = tempfile::tempdir().unwrap();
    let run = one_step_run(tmp.path());
    // how long one save takes here, to spread the kills over whole saves
    let t = std::time::Instant::now();
    save_repeatedly(&run, 5);
    let per_save = t.elapsed() / 5;
    let mut last_step = load(&checkpoint_dir(&run), &candle_core::Device::Cpu)
        .unwrap()
        .state
        .step;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (mut only_old, mut kills) = (0, 0);
    for _ in 0..60 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_saves_until_killed",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &run)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // past the child's start-up (loading the checkpoint), then somewhere inside a save
        let wait = Duration::from_millis(60) + per_save.mul_f64(rng.random_range(0.0..8.0));
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let dir = checkpoint_dir(&run);
        if !dir.exists() {
            only_old += 1;
        }
        let ck = load(&dir, &candle_core::Device::Cpu)
            .unwrap_or_else(|e| panic!("after kill {kills} no checkpoint loads: {e}"));
        assert!(
            ck.state.step >= last_step,
            "went back to step {}",
            ck.state.step
        );
        last_step = ck.state.step;
    }
    eprintln!(
        "checkpoint kill test: {kills} kills, one save ~{per_save:?}, {only_old} left only checkpoint.old, last step {last_step}"
    );
    // a save after the kills leaves one checkpoint and no temporary folders
    save_repeatedly(&run, 1);
    let names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".checkpoint-") || n.starts_with("checkpoint"))
        .collect();
    assert_eq!(names, ["checkpoint"]);
    assert!(
        last_step > 6,
        "the child never saved (last step {last_step})"
    );
}

#[test]
fn an_interrupted_save_keeps_the_old_checkpoint_until_the_new_one_is_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let run = one_step_run(tmp.path());
    // as a kill between the two renames leaves it: only checkpoint.old, and a partial
    // temporary folder
    let dir = checkpoint_dir(&run);
    std::fs::rename(&dir, dir.with_extension("old")).unwrap();
    std::fs::create_dir(run.join(".checkpoint-partial")).unwrap();
    std::fs::write(run.join(".checkpoint-partial/model.safetensors"), b"half").unwrap();
    assert_eq!(load(&dir, &candle_core::Device::Cpu).unwrap().state.step, 1);
    save_repeatedly(&run, 1);
    assert_eq!(load(&dir, &candle_core::Device::Cpu).unwrap().state.step, 2);
    assert!(!dir.with_extension("old").exists());
    assert!(!run.join(".checkpoint-partial").exists());
}
