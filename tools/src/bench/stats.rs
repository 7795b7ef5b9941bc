//! The benchmark's arithmetic, kept pure: percentiles of latency samples and per-hop latencies
//! from a ticket's transition times.

use chrono::{DateTime, Utc};

/// Latency summary of one series, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentile (`q` in 0..=1) of samples already sorted ascending.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p99 and max of `samples` (any order); `None` when there are none.
pub fn summarize(mut samples: Vec<f64>) -> Option<Summary> {
    samples.retain(|s| s.is_finite());
    samples.sort_by(f64::total_cmp);
    Some(Summary {
        count: samples.len(),
        p50: percentile(&samples, 0.50)?,
        p99: percentile(&samples, 0.99)?,
        max: *samples.last()?,
    })
}

/// Milliseconds from `from` to `to`; negative when clocks or rounding put `to` first.
pub fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

/// One hop's latency series: the time from the previous mark to this one, per ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub name: String,
    pub samples: Vec<f64>,
}

/// Splits each ticket's path into hops. `paths[t]` holds ticket `t`'s marks in order: the time
/// the request was sent, then the time each stage decided. Hop `k` is mark `k+1` − mark `k`,
/// named `names[k]`; the last series is end to end (last mark − first). A ticket missing a mark
/// (`None`) contributes nothing to the hops that touch it, nor to end to end.
pub fn hops(names: &[&str], paths: &[Vec<Option<DateTime<Utc>>>]) -> Vec<Hop> {
    let mut out: Vec<Hop> = names
        .iter()
        .map(|n| Hop {
            name: (*n).to_owned(),
            samples: Vec::with_capacity(paths.len()),
        })
        .collect();
    let mut end_to_end = Vec::with_capacity(paths.len());
    for marks in paths {
        for (k, hop) in out.iter_mut().enumerate() {
            if let (Some(Some(a)), Some(Some(b))) = (marks.get(k), marks.get(k + 1)) {
                hop.samples.push(millis(*a, *b));
            }
        }
        if marks.len() == names.len() + 1
            && marks.iter().all(Option::is_some)
            && let (Some(Some(a)), Some(Some(b))) = (marks.first(), marks.last())
        {
            end_to_end.push(millis(*a, *b));
        }
    }
    out.push(Hop {
        name: "end to end".into(),
        samples: end_to_end,
    });
    out
}

/// Resident-set figures parsed from `/proc/<pid>/status`: (current, peak) in KiB.
pub fn rss_kib(status: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time a process has used (user + system), in clock ticks, from `/proc/<pid>/stat`. The
/// command name may hold spaces and parentheses, so fields are counted after the last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the file, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Socket inodes listening on `port` in a `/proc/net/tcp` or `tcp6` table (state 0A = LISTEN;
/// the local address is `hexaddr:hexport`).
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *f.get(3)? == "0A").then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.5), Some(50.0));
        assert_eq!(percentile(&s, 0.99), Some(99.0));
        assert_eq!(percentile(&s, 1.0), Some(100.0));
        assert_eq!(percentile(&s, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn hops_split_each_path_and_skip_missing_marks() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().to_utc();
        let at = |ms: i64| Some(t0 + chrono::Duration::milliseconds(ms));
        let paths = vec![vec![at(0), at(5), at(12)], vec![at(0), None, at(30)]];
        let h = hops(&["a", "b"], &paths);
        assert_eq!(h[0].samples, vec![5.0]);
        assert_eq!(h[1].samples, vec![7.0]);
        assert_eq!(h[2].name, "end to end");
        assert_eq!(h[2].samples, vec![12.0], "an incomplete path has no end-to-end time");
    }

    #[test]
    fn rss_fields_are_read_in_kib() {
        let status = "Name:\tswitchboard\nVmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\n";
        assert_eq!(rss_kib(status), (Some(30720), Some(40960)));
        assert_eq!(rss_kib("Name: x\n"), (None, None));
    }

    #[test]
    fn cpu_ticks_are_user_plus_system() {
        let stat = "1234 (switch (board)) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 8 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn listening_sockets_are_found_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1628 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1628 0100007F:D431 01 00000000:00000000 00:00000000 00000000   105        0 4242 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 999 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            listening_inodes(table, 5672),
            vec![31337],
            "0x1628 = 5672, listening only"
        );
        assert_eq!(listening_inodes(table, 5432), vec![999]);
        assert!(listening_inodes(table, 80).is_empty());
    }

    proptest! {
        #[test]
        fn summary_is_ordered_and_drawn_from_the_samples(v in proptest::collection::vec(-1e6f64..1e6, 1..300)) {
            let s = summarize(v.clone()).unwrap();
            prop_assert!(s.p50 <= s.p99 && s.p99 <= s.max);
            prop_assert!(v.contains(&s.p50) && v.contains(&s.p99));
            prop_assert_eq!(s.count, v.len());
            prop_assert_eq!(s.max, v.iter().cloned().fold(f64::MIN, f64::max));
        }

        #[test]
        fn hop_latencies_add_up_to_end_to_end(steps in proptest::collection::vec(0i64..10_000, 1..6)) {
            let t0 = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z").unwrap().to_utc();
            let mut marks = vec![Some(t0)];
            let mut t = t0;
            for s in &steps {
                t += chrono::Duration::milliseconds(*s);
                marks.push(Some(t));
            }
            let names: Vec<String> = (0..steps.len()).map(|i| format!("h{i}")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let h = hops(&names, &[marks]);
            let sum: f64 = h[..steps.len()].iter().map(|x| x.samples[0]).sum();
            prop_assert!((sum - h[steps.len()].samples[0]).abs() < 1e-9);
        }
    }
}
