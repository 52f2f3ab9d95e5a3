//! Learning-rate schedules: `warmup(steps) then cosine()` and the rest,
//! computed on the host and fed to the step as the `lr` input.

use std::f64::consts::PI;

use crate::check::config::Config;

/// The learning rate at `step` (0-based) of `total` steps, from base rate
/// `lr` and a chain of schedules: each part runs until the next takes over;
/// `warmup` covers its own steps, the decays cover the rest.
pub fn learning_rate(lr: f64, schedule: &[Config], step: u64, total: u64) -> f64 {
    let mut start = 0u64;
    for (i, part) in schedule.iter().enumerate() {
        let last = i + 1 == schedule.len();
        if part.name == "warmup" {
            let steps = part.int("steps").unwrap_or(1).max(1) as u64;
            if step < start + steps || last {
                let done = (step - start + 1).min(steps) as f64;
                return lr * done / steps as f64;
            }
            start += steps;
            continue;
        }
        let s = (step - start) as f64;
        let span = total.saturating_sub(start).max(1) as f64;
        let min = part.float("min").unwrap_or(0.0);
        return match part.name.as_str() {
            "step" => {
                let every = part.int("every").unwrap_or(1).max(1) as f64;
                lr * part.float("gamma").unwrap_or(0.1).powf((s / every).floor())
            }
            "exponential" => lr * part.float("gamma").unwrap_or(1.0).powf(s),
            "cosine" => lr * (min + (1.0 - min) * 0.5 * (1.0 + (PI * (s / span).min(1.0)).cos())),
            "linear" => lr * (1.0 - (1.0 - min) * (s / span).min(1.0)),
            _ => lr,
        };
    }
    lr
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::config::ConfigValue;

    fn config(name: &str, values: &[(&str, ConfigValue)]) -> Config {
        Config {
            name: name.to_string(),
            span: Default::default(),
            values: values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        }
    }

    #[test]
    fn warmup_then_cosine() {
        let schedule = [
            config("warmup", &[("steps", ConfigValue::Int(10))]),
            config("cosine", &[]),
        ];
        assert!((learning_rate(1.0, &schedule, 0, 110) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, &schedule, 9, 110) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, &schedule, 10, 110) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, &schedule, 60, 110) - 0.5).abs() < 1e-12);
        assert!(learning_rate(1.0, &schedule, 109, 110) < 0.001);
    }

    #[test]
    fn step_decay() {
        let schedule = [config(
            "step",
            &[("every", ConfigValue::Int(3)), ("gamma", ConfigValue::Float(0.5))],
        )];
        let rates: Vec<f64> = (0..7).map(|s| learning_rate(2.0, &schedule, s, 100)).collect();
        assert_eq!(rates, vec![2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 0.5]);
    }

    #[test]
    fn no_schedule_keeps_the_rate() {
        assert_eq!(learning_rate(0.3, &[], 50, 100), 0.3);
    }
}
