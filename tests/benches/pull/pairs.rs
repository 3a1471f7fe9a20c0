//! Paired measurement, so that a ratio is not flattered by order, warm-up
//! or drift: one warm-up pair discarded, then pairs in ABBA order (variant
//! first, then baseline first, alternating), each pair's ratio taken on
//! its own, and the median of those ratios reported with their spread.
//! Every sample carries the CPU seconds of the processes that did the work
//! beside its wall time.

/// One timed run: wall seconds and the CPU seconds (user + system) of the
/// processes that worked for it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: f64,
    pub cpu: f64,
}

/// The measured pairs of one comparison.
pub struct Pairs {
    pub variant: Vec<Sample>,
    pub baseline: Vec<Sample>,
}

impl Pairs {
    /// Each pair's wall-time ratio, variant over baseline.
    pub fn ratios(&self) -> Vec<f64> {
        self.variant
            .iter()
            .zip(&self.baseline)
            .map(|(v, b)| v.wall / b.wall)
            .collect()
    }
}

/// Runs `variant` and `baseline` (each given the run's index) for one
/// discarded warm-up pair and then `pairs` pairs, alternating which goes
/// first.
pub fn measure(
    pairs: usize,
    mut variant: impl FnMut(usize) -> Sample,
    mut baseline: impl FnMut(usize) -> Sample,
) -> Pairs {
    let mut measured = Pairs {
        variant: Vec::new(),
        baseline: Vec::new(),
    };
    for run in 0..=pairs {
        let (v, b) = if run % 2 == 0 {
            let v = variant(run);
            (v, baseline(run))
        } else {
            let b = baseline(run);
            (variant(run), b)
        };
        if run > 0 {
            measured.variant.push(v);
            measured.baseline.push(b);
        }
    }
    measured
}

/// CPU seconds (user + system) a process has used so far, from
/// /proc/PID/stat (threads included; children only once waited for).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // "pid (comm) S ppid ...": utime and stime are fields 14 and 15.
    let Some(after) = text.rfind(')').map(|i| &text[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// CPU seconds used by the children this process has waited for.
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Times `work`, counting the CPU seconds of `pids` and of the children
/// waited for meanwhile (a CLI run).
pub fn timed(pids: &[u32], work: impl FnOnce()) -> Sample {
    let cpu = || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() + children_cpu_seconds();
    let (cpu_before, started) = (cpu(), std::time::Instant::now());
    work();
    Sample {
        wall: started.elapsed().as_secs_f64(),
        cpu: cpu() - cpu_before,
    }
}
