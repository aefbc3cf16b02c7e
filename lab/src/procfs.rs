//! What `/proc` says, read with the `procfs` crate: a process's or a thread's CPU time (and the
//! time it waited runnable for a CPU), a process's threads, its write(2) I/O, its children, the
//! whole machine's CPU time, and the load average. Linux only; a figure that cannot be read is
//! `None`, empty or zero.

use std::collections::HashMap;
use std::path::Path;

use procfs::process::Process;
use procfs::{Current as _, CurrentSI as _, FromRead as _, KernelStats, LoadAverage};

/// Clock ticks per second of `/proc`'s CPU times.
pub fn clock_ticks() -> f64 {
    procfs::ticks_per_second() as f64
}

/// A process's or thread's name and CPU ticks and, from its `schedstat`, the nanoseconds it
/// was runnable but waiting for a CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    /// Ticks in user mode.
    pub utime: u64,
    /// Ticks in system mode.
    pub stime: u64,
    /// Nanoseconds runnable, waiting for a CPU (0 where the kernel does not say).
    pub queued_ns: u64,
}

impl Stat {
    /// Reads a `stat` file (`/proc/PID/stat`, `/proc/PID/task/TID/stat`) and the `schedstat`
    /// beside it.
    pub fn read(path: &Path) -> Option<Stat> {
        let stat = procfs::process::Stat::from_file(path).ok()?;
        let queued_ns = procfs::process::Schedstat::from_file(path.with_file_name("schedstat"))
            .map_or(0, |s| s.run_delay);
        Some(Stat {
            comm: stat.comm,
            utime: stat.utime,
            stime: stat.stime,
            queued_ns,
        })
    }

    /// The stat of process `pid`.
    pub fn of(pid: u32) -> Option<Stat> {
        Stat::read(Path::new(&format!("/proc/{pid}/stat")))
    }

    /// User plus system time, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        (self.utime + self.stime) as f64 / clock_ticks()
    }
}

/// CPU seconds (user + system, every thread) process `pid` has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    Stat::of(pid).map(|s| s.cpu_seconds())
}

/// The threads of process `pid`, by thread id (unique across processes).
pub fn threads(pid: u32) -> HashMap<u32, Stat> {
    let Ok(tasks) = Process::new(pid as i32).and_then(|p| p.tasks()) else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let stat = Stat::read(&Path::new(&format!("/proc/{pid}/task/{}", t.tid)).join("stat"))?;
            Some((t.tid as u32, stat))
        })
        .collect()
}

/// What process `pid` wrote: bytes passed to write(2), write calls, bytes sent to the storage
/// layer; zeros when `/proc/PID/io` cannot be read.
pub fn written(pid: u32) -> [u64; 3] {
    Process::new(pid as i32)
        .and_then(|p| p.io())
        .map_or([0; 3], |io| [io.wchar, io.syscw, io.write_bytes])
}

/// Process `parent` and its children, by pid: each one's stat and command line (arguments
/// joined by spaces; a process may set its title there).
pub fn family(parent: u32) -> HashMap<u32, (Stat, String)> {
    let Ok(all) = procfs::process::all_processes() else {
        return HashMap::new();
    };
    all.flatten()
        .filter_map(|p| {
            let pid = p.pid as u32;
            let ppid = p.stat().ok()?.ppid as u32;
            if pid != parent && ppid != parent {
                return None;
            }
            let stat = Stat::of(pid)?;
            let cmdline = p.cmdline().map(|c| c.join(" ")).unwrap_or_default();
            Some((pid, (stat, cmdline)))
        })
        .collect()
}

/// The machine's CPU ticks since boot, all cores together, from `/proc/stat`'s `cpu` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineTicks {
    /// Not idle and not waiting for I/O: user, nice, system, irq, softirq and steal.
    pub busy: u64,
    /// Taken by the hypervisor.
    pub steal: u64,
    /// Everything: busy, idle and I/O wait.
    pub total: u64,
}

impl MachineTicks {
    /// Now; zero when `/proc/stat` cannot be read.
    pub fn now() -> MachineTicks {
        let Ok(stats) = KernelStats::current() else {
            return MachineTicks::default();
        };
        // Guest time is counted in user time already.
        let t = stats.total;
        let idle = t.idle + t.iowait.unwrap_or(0);
        let steal = t.steal.unwrap_or(0);
        let busy = t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0) + steal;
        MachineTicks {
            busy,
            steal,
            total: busy + idle,
        }
    }

    /// Busy CPU seconds from `earlier` to this, all cores together.
    pub fn busy_seconds_since(&self, earlier: &MachineTicks) -> f64 {
        self.busy.saturating_sub(earlier.busy) as f64 / clock_ticks()
    }
}

/// The 1, 5 and 15 minute load averages as `/proc/loadavg` writes them; `unknown` when it
/// cannot be read.
pub fn loadavg() -> String {
    LoadAverage::current().map_or_else(
        |_| "unknown".into(),
        |l| format!("{:.2} {:.2} {:.2}", l.one, l.five, l.fifteen),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_its_threads_and_the_machine_are_read() {
        let me = std::process::id();
        let stat = Stat::of(me).expect("this process's stat");
        assert!(!stat.comm.is_empty());
        assert!(cpu_seconds(me).is_some_and(|c| c >= 0.0));
        assert!(!threads(me).is_empty());
        assert!(family(me).contains_key(&me));
        let machine = MachineTicks::now();
        assert!(machine.total >= machine.busy && machine.busy >= machine.steal);
        assert!(machine.busy > 0);
        assert_eq!(loadavg().split(' ').count(), 3);
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_is_read_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("stat");
        let fields = "S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 1000 10 18446744073709551615 \
                      1 1 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        std::fs::write(&path, format!("42 (a (b) c) {fields}\n")).expect("write");
        std::fs::write(dir.path().join("schedstat"), "100 7000 3\n").expect("write");
        let stat = Stat::read(&path).expect("a stat");
        assert_eq!(
            (stat.comm.as_str(), stat.utime, stat.stime, stat.queued_ns),
            ("a (b) c", 250, 50, 7000)
        );
    }
}
