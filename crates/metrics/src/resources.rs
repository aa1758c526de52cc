//! CPU and memory of this process and its children (or of another process, such as a local
//! Spark Connect server), sampled on a background thread.
//!
//! Reads `/proc` (Linux). Children count because a peer (a JVM, a Python process) started by
//! a run is part of what that run costs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResourceSample {
    /// Seconds since the sampler started.
    pub t_seconds: f64,
    /// CPU use since the previous sample, in percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    /// Resident memory of the process and its live descendants, in bytes.
    pub rss_bytes: u64,
}

/// Peak and mean over a sampled interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSummary {
    /// Wall seconds between start and stop.
    pub wall_seconds: f64,
    /// CPU seconds (user + system) used by the process and its children in the interval.
    pub cpu_seconds: f64,
    /// Mean CPU use over the interval, in percent of one core.
    pub mean_cpu_percent: f64,
    /// Highest CPU use between two samples.
    pub peak_cpu_percent: f64,
    /// Highest resident memory seen (including the kernel's own high-water mark of this process).
    pub peak_rss_bytes: u64,
    /// Mean resident memory over the samples.
    pub mean_rss_bytes: u64,
    /// Every reading, in time order.
    pub samples: Vec<ResourceSample>,
}

/// A background thread that samples CPU and RSS every `interval` until stopped.
pub struct ResourceSampler {
    root: u32,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<ResourceSample>>>,
    handle: Option<JoinHandle<()>>,
    start: Instant,
    start_cpu: f64,
}

impl ResourceSampler {
    /// Starts sampling now. The process's memory high-water mark is reset first (Linux
    /// `clear_refs`), so the peak reported is this interval's, not an earlier run's.
    pub fn start(interval: Duration) -> Self {
        Self::start_for(std::process::id(), interval)
    }

    /// Samples process `pid` and its descendants instead of this process (a local server that
    /// does a run's work). Its high-water mark is reset where this process may (same user).
    pub fn start_for(root: u32, interval: Duration) -> Self {
        let _ = std::fs::write(format!("/proc/{root}/clear_refs"), "5");
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let start_cpu = cpu_seconds_with_children(root);
        let handle = {
            let stop = Arc::clone(&stop);
            let samples = Arc::clone(&samples);
            std::thread::Builder::new()
                .name("resource-sampler".into())
                .spawn(move || {
                    let mut last_cpu = start_cpu;
                    let mut last_t = 0.0;
                    loop {
                        let t = start.elapsed().as_secs_f64();
                        let cpu = cpu_seconds_with_children(root);
                        let cpu_percent = if t > last_t { 100.0 * (cpu - last_cpu) / (t - last_t) } else { 0.0 };
                        let sample = ResourceSample { t_seconds: t, cpu_percent, rss_bytes: rss_with_children(root) };
                        if let Ok(mut s) = samples.lock() {
                            s.push(sample);
                        }
                        (last_cpu, last_t) = (cpu, t);
                        // Sleep in short steps so stop() returns promptly.
                        let wake = Instant::now() + interval;
                        while Instant::now() < wake {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            std::thread::sleep(interval.min(Duration::from_millis(10)));
                        }
                    }
                })
                .ok()
        };
        Self { root, stop, samples, handle, start, start_cpu }
    }

    /// Stops the thread and summarizes what it saw, with one last reading taken now.
    pub fn stop(mut self) -> ResourceSummary {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let wall_seconds = self.start.elapsed().as_secs_f64();
        let cpu_seconds = (cpu_seconds_with_children(self.root) - self.start_cpu).max(0.0);
        let mut samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        samples.push(ResourceSample {
            t_seconds: wall_seconds,
            cpu_percent: samples.last().map_or(0.0, |s| s.cpu_percent),
            rss_bytes: rss_with_children(self.root),
        });
        let peak_sampled = samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0);
        let mean_rss_bytes = samples.iter().map(|s| s.rss_bytes).sum::<u64>() / samples.len() as u64;
        ResourceSummary {
            wall_seconds,
            cpu_seconds,
            mean_cpu_percent: if wall_seconds > 0.0 { 100.0 * cpu_seconds / wall_seconds } else { 0.0 },
            peak_cpu_percent: samples.iter().map(|s| s.cpu_percent).fold(0.0, f64::max),
            peak_rss_bytes: peak_sampled.max(peak_rss_of(self.root)),
            mean_rss_bytes,
            samples,
        }
    }
}

/// This process's resident memory high-water mark (VmHWM) since it started or since the last
/// [`ResourceSampler::start`] reset it, in bytes; 0 where unknown. Read right after a run's data
/// are prepared, it is the part of the whole-process peak that loading and preparing took.
pub fn process_peak_rss() -> u64 {
    peak_rss_of(std::process::id())
}

/// The resident memory high-water mark (VmHWM) of `pid`, in bytes; 0 where unknown.
fn peak_rss_of(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:").map_or(0, |k| k * 1024)
}

/// The memory this process may still use, in bytes, and where that limit comes from: the
/// smaller of the memory cgroup's limit (v1 `memory.limit_in_bytes`, v2 `memory.max`) less this
/// process's resident memory, and the machine's `MemAvailable`. `None` where neither is known.
pub fn memory_budget() -> Option<(u64, &'static str)> {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    });
    let rss = status_kib(std::process::id(), "VmRSS:").map_or(0, |k| k * 1024);
    let cgroup = cgroup_limit().map(|limit| limit.saturating_sub(rss));
    match (cgroup, available) {
        (Some(c), Some(a)) if c < a => Some((c, "the memory cgroup's limit")),
        (Some(c), None) => Some((c, "the memory cgroup's limit")),
        (_, Some(a)) => Some((a, "the machine's available memory")),
        (None, None) => None,
    }
}

/// This process's memory cgroup limit, if it has one (v1 or v2).
fn cgroup_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let file = if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else {
            continue;
        };
        // "max" (v2) or a huge number (v1's unlimited) mean no limit.
        if let Some(limit) = std::fs::read_to_string(&file).ok().and_then(|t| t.trim().parse::<u64>().ok())
            && limit < (1 << 60)
        {
            return Some(limit);
        }
    }
    None
}

/// The process that listens on TCP `port` on this machine (a local server), if this process may
/// see it.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    // /proc/net/tcp{,6}: "sl local_address rem_address st ... inode"; st 0A is LISTEN.
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                inodes.extend(f.get(9).map(|i| format!("socket:[{i}]")));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc_entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

fn clock_ticks_per_second() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux configuration we run on.
    100.0
}

fn page_size() -> u64 {
    4096
}

/// Fields of /proc/PID/stat after the command name (which may contain spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

fn process_tree(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let kids = children(all[i]);
        all.extend(kids);
        i += 1;
    }
    all
}

/// User + system CPU seconds of `root`, its live descendants and its waited-for children.
fn cpu_seconds_with_children(root: u32) -> f64 {
    let ticks: u64 = process_tree(root)
        .iter()
        .enumerate()
        .filter_map(|(i, &pid)| {
            let f = stat_fields(pid)?;
            // After the name: state=0, ..., utime=11, stime=12, cutime=13, cstime=14.
            let get = |k: usize| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let own = get(11) + get(12);
            Some(if i == 0 { own + get(13) + get(14) } else { own })
        })
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

/// Resident bytes of `root` and its live descendants.
fn rss_with_children(root: u32) -> u64 {
    process_tree(root).iter().filter_map(|&pid| stat_fields(pid)?.get(21)?.parse::<u64>().ok()).sum::<u64>()
        * page_size()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_memory_and_cpu_of_this_process() {
        let sampler = ResourceSampler::start(Duration::from_millis(5));
        // Touch 64 MiB and burn some CPU so both show up.
        let mut buf = vec![1u8; 64 << 20];
        let mut acc = 0u64;
        let until = Instant::now() + Duration::from_millis(150);
        while Instant::now() < until {
            for b in buf.iter_mut().step_by(4096) {
                *b = b.wrapping_add(1);
                acc = acc.wrapping_add(u64::from(*b));
            }
        }
        std::hint::black_box(acc);
        let summary = sampler.stop();
        drop(buf);
        assert!(summary.samples.len() >= 3, "{} samples", summary.samples.len());
        assert!(summary.peak_rss_bytes >= 64 << 20, "peak {}", summary.peak_rss_bytes);
        assert!(summary.cpu_seconds > 0.05, "cpu {}", summary.cpu_seconds);
        assert!(summary.mean_rss_bytes > 0 && summary.mean_rss_bytes <= summary.peak_rss_bytes);
        assert!(summary.samples.windows(2).all(|w| w[0].t_seconds <= w[1].t_seconds));
    }

    #[test]
    fn counts_a_child_process() {
        // A child that holds ~40 MB of resident memory for a moment.
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import time; b = bytearray(40_000_000); time.sleep(2)"])
            .spawn()
            .expect("python3 is on every machine trainbench supports");
        let mut child_rss = 0;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until && child_rss < 40_000_000 {
            std::thread::sleep(Duration::from_millis(20));
            let own = stat_fields(std::process::id()).and_then(|f| f[21].parse::<u64>().ok()).unwrap() * page_size();
            child_rss = rss_with_children(std::process::id()).saturating_sub(own);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(child_rss >= 40_000_000, "child memory not seen: {child_rss}");
    }

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(pid_listening_on(port), None);
        let sampler = ResourceSampler::start_for(std::process::id(), Duration::from_millis(5));
        let summary = sampler.stop();
        assert!(summary.peak_rss_bytes > 0);
    }
}
