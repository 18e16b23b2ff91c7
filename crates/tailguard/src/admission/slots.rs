//! The slot adjuster: a pure rule that moves the slot count by one per run-queue sample.
//!
//! CockroachDB's KV slot adjuster, with its constants ([`super::config`]):
//!
//! ```text
//! if runnable_per_cpu >= threshold:          overloaded
//!     if used > 0 && used <= slots && slots > min:  slots -= 1
//! else if runnable_per_cpu <= threshold / 2: underloaded
//!     if used >= slots && slots < max:              slots += 1
//! (in between: unchanged)
//! ```
//!
//! Decreases wait while more slots are in use than exist (an earlier decrease has not taken
//! effect yet), and increases need every slot in use (more slots would change nothing
//! otherwise). One step per sample at 1 ms moves the count by up to 1000 per second.

/// What the adjuster sees at one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlotInput {
    /// Runnable tasks per CPU.
    pub runnable_per_cpu: f64,
    /// Slots in use.
    pub used: u32,
}

/// Which way one sample moved the slot count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotChange {
    /// One slot more.
    Increased,
    /// One slot fewer.
    Decreased,
    /// No change.
    Unchanged,
}

/// The slot count and the rule that moves it.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotController {
    slots: u32,
    min: u32,
    max: u32,
    threshold: f64,
}

impl SlotController {
    /// A controller at `initial` slots, moving within `min ..= max` around `threshold`
    /// runnable tasks per CPU. The caller validates the bounds
    /// ([`WorkQueueConfig::validate`](super::WorkQueueConfig::validate)).
    pub fn new(initial: u32, min: u32, max: u32, threshold: f64) -> Self {
        SlotController { slots: initial.clamp(min, max), min, max, threshold }
    }

    /// The current slot count.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Applies one sample.
    pub fn sample(&mut self, input: SlotInput) -> SlotChange {
        let SlotInput { runnable_per_cpu, used } = input;
        if runnable_per_cpu >= self.threshold {
            if used > 0 && used <= self.slots && self.slots > self.min {
                self.slots -= 1;
                return SlotChange::Decreased;
            }
        } else if runnable_per_cpu <= self.threshold / 2.0 && used >= self.slots && self.slots < self.max {
            self.slots += 1;
            return SlotChange::Increased;
        }
        SlotChange::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row: runnable per CPU, slots in use, slot count expected after the sample.
    type Row = (f64, u32, u32);

    fn run(controller: &mut SlotController, rows: &[Row]) {
        for (i, &(runnable_per_cpu, used, expected)) in rows.iter().enumerate() {
            controller.sample(SlotInput { runnable_per_cpu, used });
            assert_eq!(controller.slots(), expected, "row {i}: runnable {runnable_per_cpu}, used {used}");
        }
    }

    #[test]
    fn moves_by_one_around_the_threshold() {
        let mut controller = SlotController::new(4, 1, 6, 32.0);
        run(
            &mut controller,
            &[
                // Underloaded, all slots used: up by one per sample, up to the max.
                (0.0, 4, 5),
                (16.0, 5, 6),
                (1.0, 6, 6),
                // Underloaded but slots to spare: unchanged.
                (1.0, 3, 6),
                // Between half the threshold and the threshold: unchanged either way.
                (20.0, 6, 6),
                (31.9, 2, 6),
                // Overloaded with slots in use: down by one per sample, down to the min.
                (32.0, 6, 5),
                (40.0, 5, 4),
                (40.0, 1, 3),
                (40.0, 1, 2),
                (40.0, 1, 1),
                (40.0, 1, 1),
            ],
        );
    }

    #[test]
    fn overload_waits_for_earlier_decreases_and_ignores_idle_queues() {
        let mut controller = SlotController::new(4, 1, 100, 32.0);
        run(
            &mut controller,
            &[
                // Nothing admitted: the overload is someone else's; keep the slots.
                (100.0, 0, 4),
                // More in use than exist (a decrease has not taken effect): hold off.
                (100.0, 5, 4),
                (100.0, 4, 3),
            ],
        );
    }
}
