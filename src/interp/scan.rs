//! `scan`: the body run once per step, carries passed from step to step,
//! results stacked on axis 1 (layout in [`crate::ir::loops`]).

use ndarray::{ArrayD, Axis};

use super::{run_with_args, Env};
use crate::ir::loops::Loop;

pub(super) fn scan(looped: &Loop, env: &Env, inputs: &[&ArrayD<f64>]) -> Result<ArrayD<f64>, String> {
    if inputs.len() != looped.operands() {
        return Err(format!("takes {} operands, found {}", looped.operands(), inputs.len()));
    }
    let (inits, rest) = inputs.split_at(looped.carries);
    let (sequences, captured) = rest.split_at(looped.sequences);
    let carry_outputs: Vec<_> = (0..looped.carries).map(|k| looped.carry_output(k)).collect();
    let y_outputs: Vec<_> = (0..looped.ys).map(|k| looped.y_output(k)).collect();
    let (Some(carry_outputs), Some(y_outputs)) = (
        carry_outputs.into_iter().collect::<Option<Vec<_>>>(),
        y_outputs.into_iter().collect::<Option<Vec<_>>>(),
    ) else {
        return Err("the body lacks a carry or result output".to_string());
    };
    for sequence in sequences {
        if sequence.ndim() < 2 || sequence.shape()[1] != looped.length {
            return Err(format!(
                "a sequence is {:?}, not {} steps long",
                sequence.shape(),
                looped.length
            ));
        }
    }
    let mut carries: Vec<ArrayD<f64>> = inits.iter().map(|c| (*c).clone()).collect();
    let mut ys: Vec<Vec<ArrayD<f64>>> = vec![Vec::with_capacity(looped.length); looped.ys];
    let mut times: Vec<usize> = (0..looped.length).collect();
    if looped.reverse {
        times.reverse();
    }
    for t in times {
        let steps: Vec<ArrayD<f64>> = sequences.iter().map(|s| s.index_axis(Axis(1), t).to_owned()).collect();
        let mut args: Vec<&ArrayD<f64>> = carries.iter().collect();
        args.extend(steps.iter());
        args.extend(captured.iter().copied());
        let values = run_with_args(&looped.body, env, &args).map_err(|e| format!("step {t}: {e}"))?;
        let value = |id| values.get(id).cloned().ok_or("a body output has no value");
        let next: Vec<ArrayD<f64>> = carry_outputs.iter().map(|&id| value(id)).collect::<Result<_, _>>()?;
        for (stack, &id) in ys.iter_mut().zip(&y_outputs) {
            stack.push(value(id)?);
        }
        carries = next;
    }
    let mut flat: Vec<f64> = Vec::new();
    for carry in &carries {
        flat.extend(carry.iter());
    }
    for mut stack in ys {
        if looped.reverse {
            stack.reverse();
        }
        let views: Vec<_> = stack
            .iter()
            .map(|y| y.view().insert_axis(Axis(1.min(y.ndim()))))
            .collect();
        let stacked = ndarray::concatenate(Axis(1.min(stack[0].ndim())), &views).map_err(|e| e.to_string())?;
        flat.extend(stacked.iter());
    }
    Ok(ArrayD::from_shape_vec(vec![flat.len()], flat).expect("a flat shape fits its elements"))
}
