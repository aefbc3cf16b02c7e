//! What `/proc` says about CPU time: a process's or a thread's (`/proc/PID/stat`), the whole
//! machine's (`/proc/stat`), and the load average. Linux only; a figure that cannot be read is
//! `None` or zero.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Clock ticks per second of `/proc`'s CPU times (`getconf CLK_TCK`, 100 when unknown).
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// One `/proc/…/stat` file: the process or thread name and its CPU ticks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    /// Ticks in user mode.
    pub utime: u64,
    /// Ticks in system mode.
    pub stime: u64,
}

impl Stat {
    /// Reads a `stat` file: `/proc/PID/stat` or `/proc/PID/task/TID/stat`.
    pub fn read(path: &Path) -> Option<Stat> {
        let text = std::fs::read_to_string(path).ok()?;
        // The name may hold spaces and parentheses: the fields follow its last `)`.
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
        // Counting from 1 with the pid: utime is field 14, stime field 15.
        Some(Stat {
            comm: text[open + 1..close].to_owned(),
            utime: fields.get(11)?.parse().ok()?,
            stime: fields.get(12)?.parse().ok()?,
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
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
            return MachineTicks::default();
        };
        // user nice system idle iowait irq softirq steal (guest time is counted in user).
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 8 {
            return MachineTicks::default();
        }
        let total: u64 = v.iter().sum();
        MachineTicks {
            busy: total - v[3] - v[4],
            steal: v[7],
            total,
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
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_the_machine_are_read() {
        let me = Stat::of(std::process::id()).expect("this process's stat");
        assert!(!me.comm.is_empty());
        assert!(cpu_seconds(std::process::id()).is_some_and(|c| c >= 0.0));
        let machine = MachineTicks::now();
        assert!(machine.total >= machine.busy && machine.busy >= machine.steal);
        assert_eq!(loadavg().split(' ').count(), 3);
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_is_read_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("stat");
        let fields = "S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        std::fs::write(&path, format!("42 (a (b) c) {fields}\n")).expect("write");
        let stat = Stat::read(&path).expect("a stat");
        assert_eq!(
            (stat.comm.as_str(), stat.utime, stat.stime),
            ("a (b) c", 250, 50)
        );
    }
}
