//! CPU use of what a benchmark measures, from two samples of `/proc` (the lab's [`procfs`]):
//! the servers under test (summed, by thread name, and their write I/O), PostgreSQL's
//! processes by role, the benchmark's own process, and the machine (busy, stolen and other
//! processes' cores). Also the file system a directory lives on and its `fdatasync` latency.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use crate::procfs::{self, MachineTicks, Stat};
use crate::stats::round;

/// CPU time of the servers (summed) and their threads, of PostgreSQL's processes, of this
/// process, and the machine's, at one instant.
#[derive(Debug)]
pub struct Sample {
    at: Instant,
    server: Stat,
    /// The servers' threads, by thread id (unique across processes).
    threads: HashMap<u32, Stat>,
    io: [u64; 3],
    /// The postmaster and its children, by pid: role and CPU.
    postgres: HashMap<u32, (String, Stat)>,
    generator: Stat,
    machine: MachineTicks,
}

impl Sample {
    /// Now: the servers `pids`; `postgres`, the postmaster's pid and the database of the
    /// servers' sessions (see [`crate::postgres::role`]).
    pub fn take(pids: &[u32], postgres: Option<(u32, &str)>) -> Sample {
        let mut server = Stat::default();
        let mut threads = HashMap::new();
        let mut io = [0; 3];
        for &pid in pids {
            threads.extend(procfs::threads(pid));
            if let Some(s) = Stat::of(pid) {
                server.comm = s.comm;
                server.utime += s.utime;
                server.stime += s.stime;
                server.queued_ns += s.queued_ns;
            }
            for (total, x) in io.iter_mut().zip(procfs::written(pid)) {
                *total += x;
            }
        }
        let postgres = postgres
            .map(|(postmaster, db)| {
                procfs::family(postmaster)
                    .into_iter()
                    .map(|(pid, (stat, cmdline))| {
                        (pid, (crate::postgres::role(&cmdline, db), stat))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Sample {
            at: Instant::now(),
            server,
            threads,
            io,
            postgres,
            generator: Stat::of(std::process::id()).unwrap_or_default(),
            machine: MachineTicks::now(),
        }
    }
}

/// CPU seconds in user and system mode; seconds runnable but waiting for a CPU.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub user: f64,
    pub sys: f64,
    pub queued: f64,
}

impl Cpu {
    pub fn between(a: &Stat, b: &Stat, ticks: f64) -> Cpu {
        Cpu {
            user: b.utime.saturating_sub(a.utime) as f64 / ticks,
            sys: b.stime.saturating_sub(a.stime) as f64 / ticks,
            queued: b.queued_ns.saturating_sub(a.queued_ns) as f64 / 1e9,
        }
    }

    pub fn total(self) -> f64 {
        self.user + self.sys
    }

    pub fn to_json(self, wall: f64) -> Value {
        json!({
            "cpu_s": round(self.total(), 3),
            "user_s": round(self.user, 3),
            "sys_s": round(self.sys, 3),
            "cores": round(self.total() / wall, 3),
            "waiting_for_cpu_s": round(self.queued, 3),
        })
    }
}

/// CPU by thread or process name (or role), with how many there were of that name.
pub type ByName = BTreeMap<String, (Cpu, usize)>;

/// CPU use over a window, in seconds of CPU time.
#[derive(Debug, Clone)]
pub struct CpuUse {
    pub wall: f64,
    /// The servers, summed.
    pub server: Cpu,
    /// Server CPU by thread name, with the number of threads of that name.
    pub server_threads: ByName,
    /// Server write(2) bytes, write calls, and bytes sent to storage.
    pub server_io: [u64; 3],
    /// PostgreSQL's processes, summed; by role with the number of processes.
    pub postgres: Option<(Cpu, ByName)>,
    pub generator: Cpu,
    pub machine_busy: f64,
    pub machine_steal: f64,
    pub machine_capacity: f64,
}

/// Adds `d` to the entry of `name`, counting one more thread or process.
fn add_to(by: &mut ByName, name: &str, d: Cpu) {
    let e = by.entry(name.to_owned()).or_default();
    e.0.user += d.user;
    e.0.sys += d.sys;
    e.0.queued += d.queued;
    e.1 += 1;
}

/// The CPU used from sample `a` to sample `b`, with `ticks` clock ticks a second.
pub fn cpu_use(a: &Sample, b: &Sample, ticks: f64) -> CpuUse {
    let mut server_threads: ByName = BTreeMap::new();
    for (tid, t1) in &b.threads {
        let t0 = a.threads.get(tid).cloned().unwrap_or_default();
        add_to(&mut server_threads, &t1.comm, Cpu::between(&t0, t1, ticks));
    }
    let postgres = (!b.postgres.is_empty()).then(|| {
        let mut by_role: ByName = BTreeMap::new();
        let mut total = Cpu::default();
        // A process that ended inside the window is not counted; one that began, in full.
        for (pid, (role, p1)) in &b.postgres {
            let p0 = a
                .postgres
                .get(pid)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            let d = Cpu::between(&p0, p1, ticks);
            total.user += d.user;
            total.sys += d.sys;
            total.queued += d.queued;
            add_to(&mut by_role, role, d);
        }
        (total, by_role)
    });
    let s = |x: u64, y: u64| y.saturating_sub(x) as f64 / ticks;
    CpuUse {
        wall: (b.at - a.at).as_secs_f64(),
        server: Cpu::between(&a.server, &b.server, ticks),
        server_threads,
        server_io: [0, 1, 2].map(|i| b.io[i].saturating_sub(a.io[i])),
        postgres,
        generator: Cpu::between(&a.generator, &b.generator, ticks),
        machine_busy: s(a.machine.busy, b.machine.busy),
        machine_steal: s(a.machine.steal, b.machine.steal),
        machine_capacity: s(a.machine.total, b.machine.total),
    }
}

impl CpuUse {
    /// PostgreSQL's processes, in CPU seconds.
    pub fn postgres_total(&self) -> f64 {
        self.postgres.as_ref().map_or(0.0, |(c, _)| c.total())
    }

    /// Cores busy with neither the servers, PostgreSQL nor this process.
    pub fn others(&self) -> f64 {
        (self.machine_busy - self.server.total() - self.postgres_total() - self.generator.total())
            .max(0.0)
    }

    /// The figures as JSON, per acknowledged change where it says so.
    pub fn to_json(&self, accepted: u64) -> Value {
        let w = self.wall;
        let by = |m: &ByName, count: &str| -> serde_json::Map<String, Value> {
            m.iter()
                .map(|(k, (c, n))| {
                    let mut v = c.to_json(w);
                    v[count] = json!(n);
                    (k.clone(), v)
                })
                .collect()
        };
        let per = |x: u64| round(x as f64 / accepted.max(1) as f64, 1);
        let per_1000 = |cpu: f64| round(cpu * 1e6 / accepted.max(1) as f64, 2);
        json!({
            "wall_s": round(w, 3),
            "server": self.server.to_json(w),
            "server_cpu_ms_per_1000_acknowledged": per_1000(self.server.total()),
            "server_threads": by(&self.server_threads, "threads"),
            "server_write_bytes_per_change": per(self.server_io[0]),
            "server_write_calls_per_change": round(self.server_io[1] as f64 / accepted.max(1) as f64, 3),
            "server_storage_bytes_per_change": per(self.server_io[2]),
            "postgres": self.postgres.as_ref().map(|(c, roles)| {
                let mut v = c.to_json(w);
                v["cpu_ms_per_1000_acknowledged"] = json!(per_1000(c.total()));
                v["by_role"] = json!(by(roles, "processes"));
                v
            }),
            "bench_process": self.generator.to_json(w),
            "machine_busy_cores": round(self.machine_busy / w, 3),
            "other_processes_cores": round(self.others() / w, 3),
            "machine_steal_cores": round(self.machine_steal / w, 3),
            "machine_cores": round(self.machine_capacity / w, 2),
        })
    }
}

/// `fdatasync` after a 4 KiB append, as a store commit waits for one, in the file system of
/// `dir`: milliseconds, sorted.
pub fn fsync_probe(dir: &Path, n: usize) -> Vec<f64> {
    let path = dir.join("fsync-probe");
    let mut file = File::create(&path).expect("create the fsync probe");
    let block = [0x5au8; 4096];
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        file.write_all(&block).expect("write the fsync probe");
        let t = Instant::now();
        file.sync_data().expect("fdatasync");
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(file);
    let _ = std::fs::remove_file(path);
    ms.sort_by(f64::total_cmp);
    ms
}

/// The file system type `path` lives on, from `/proc/mounts` (longest matching mount point).
pub fn fs_type(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    ::procfs::mounts()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| path.starts_with(&m.fs_file))
        .max_by_key(|m| m.fs_file.len())
        .map_or_else(|| "unknown".into(), |m| m.fs_vfstype)
}
