use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Replays `schedule` on a model of the cluster, failing on any step that is out of order or
/// impossible, and checking that everything is undone at the end.
fn replay(schedule: &Schedule, duration: Duration, nodes: usize) -> Result<(), String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Node {
        Up,
        Killed,
        Paused,
    }
    let mut state = vec![Node::Up; nodes];
    let mut links: BTreeMap<Link, LinkMode> = BTreeMap::new();
    let mut last = Duration::ZERO;
    for step in &schedule.steps {
        if step.at < last || step.at >= duration {
            return Err(format!(
                "step at {:?} out of order or past the end",
                step.at
            ));
        }
        last = step.at;
        let down = state.iter().filter(|s| **s != Node::Up).count();
        match step.action {
            Action::Kill(n) | Action::Pause(n) if state[n] != Node::Up || down > 0 => {
                return Err(format!("{} while a node is down", step.action));
            }
            Action::Kill(n) => state[n] = Node::Killed,
            Action::Pause(n) => state[n] = Node::Paused,
            Action::Restart(n) if state[n] == Node::Killed => state[n] = Node::Up,
            Action::Resume(n) if state[n] == Node::Paused => state[n] = Node::Up,
            Action::Restart(_) | Action::Resume(_) => {
                return Err(format!("{} of a node that is not down so", step.action));
            }
            Action::SetLinks {
                links: ref set,
                mode,
            } => {
                if set.is_empty() {
                    return Err("a step on no link".into());
                }
                for link in set {
                    if link.from == link.to || link.from >= nodes || link.to >= nodes {
                        return Err(format!("no such link {link}"));
                    }
                    links.insert(*link, mode);
                }
            }
            Action::CutLinks { links: ref cut, .. } => {
                if cut.is_empty() {
                    return Err("a cut of no link".into());
                }
            }
        }
    }
    if state.iter().any(|s| *s != Node::Up) {
        return Err("a node is still down at the end".into());
    }
    if let Some((link, mode)) = links.iter().find(|(_, mode)| **mode != LinkMode::HEALED) {
        return Err(format!("{link} is left {mode:?}"));
    }
    Ok(())
}

proptest! {
    #[test]
    fn every_schedule_is_ordered_possible_and_undone(
        seed in any::<u64>(),
        seconds in 0u64..300,
        nodes in 3usize..=5,
    ) {
        let duration = Duration::from_secs(seconds);
        let schedule = Schedule::generate(seed, duration, nodes);
        prop_assert_eq!(replay(&schedule, duration, nodes), Ok(()));
    }

    #[test]
    fn one_seed_gives_one_schedule(seed in any::<u64>(), nodes in 3usize..=5) {
        let duration = Duration::from_secs(120);
        prop_assert_eq!(
            Schedule::generate(seed, duration, nodes),
            Schedule::generate(seed, duration, nodes)
        );
    }
}

#[test]
fn a_long_run_draws_every_kind_of_fault() {
    let schedule = Schedule::generate(7, Duration::from_secs(600), 3);
    let printed: Vec<String> = schedule
        .steps
        .iter()
        .map(|s| s.action.to_string())
        .collect();
    for kind in [
        "kill -KILL",
        "restart",
        "kill -STOP",
        "kill -CONT",
        "partition",
        "blackhole",
        "delay",
        "heal",
        "close connections",
        "reset connections",
    ] {
        assert!(
            printed.iter().any(|line| line.starts_with(kind)),
            "no `{kind}` in {printed:?}"
        );
    }
    // A one-way partition: some partition step cuts a link without its reverse.
    let one_way = schedule.steps.iter().any(|step| match &step.action {
        Action::SetLinks {
            links,
            mode: LinkMode::Partitioned,
        } => links.iter().any(|l| {
            !links.contains(&Link {
                from: l.to,
                to: l.from,
            })
        }),
        _ => false,
    });
    assert!(one_way, "no one-way partition in 600 s");
    assert_ne!(
        schedule,
        Schedule::generate(8, Duration::from_secs(600), 3),
        "two seeds, one schedule"
    );
}

#[test]
fn a_run_too_short_for_a_fault_has_none() {
    assert!(Schedule::generate(1, WARMUP + COOLDOWN, 3).steps.is_empty());
}
