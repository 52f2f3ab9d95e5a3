//! Checkpoints in `safetensors` format: every parameter, model state and
//! optimizer slot (as f64, so a resumed run is bit-for-bit the same), with
//! the step and the program's hash in the metadata. Written atomically: a
//! temporary file, then a rename.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

/// A run directory's checkpoint.
pub const FILE: &str = "checkpoint.safetensors";

/// A loaded checkpoint.
pub struct Checkpoint {
    pub tensors: BTreeMap<String, ArrayD<f64>>,
    pub step: u64,
    pub file_hash: String,
}

/// The SHA-256 of a program's text, hex-encoded.
pub fn hash_text(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `path` atomically.
pub fn save(path: &Path, tensors: &BTreeMap<String, ArrayD<f64>>, step: u64, file_hash: &str) -> Result<(), String> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, array)| {
            let data: Vec<u8> = array.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name.clone(), data, array.shape().to_vec())
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, data, shape)| {
            let view = TensorView::new(Dtype::F64, shape.clone(), data).map_err(|e| e.to_string())?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_, String>>()?;
    let metadata = HashMap::from([
        ("format".to_string(), "nnc-checkpoint-1".to_string()),
        ("step".to_string(), step.to_string()),
        ("file_hash".to_string(), file_hash.to_string()),
    ]);
    let buffer = sorted_header(safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())?);
    let temporary = path.with_extension("safetensors.tmp");
    std::fs::write(&temporary, buffer).map_err(|e| format!("cannot write `{}`: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot move the checkpoint into `{}`: {e}", path.display()))
}

/// The file with its JSON header's keys in order (the metadata is a
/// `HashMap`, which the `safetensors` crate writes in a random order), so
/// that equal tensors give equal bytes; the header keeps its length (the
/// same keys, the same compact JSON), so the data does not move. Returned
/// as it was if the header cannot be read back.
fn sorted_header(mut file: Vec<u8>) -> Vec<u8> {
    let Some(length) = file
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    else {
        return file;
    };
    let Some(header) = file.get(8..8 + length) else {
        return file;
    };
    // serde_json's maps are ordered by key.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(header) else {
        return file;
    };
    let sorted = value.to_string().into_bytes();
    if sorted.len() > length {
        return file;
    }
    let room = &mut file[8..8 + length];
    room[..sorted.len()].copy_from_slice(&sorted);
    room[sorted.len()..].fill(b' ');
    file
}

/// Reads a checkpoint written by [`save`] (or any safetensors file of F32
/// or F64 tensors, for `--init-from`).
pub fn load(path: &Path) -> Result<Checkpoint, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read checkpoint `{}`: {e}", path.display()))?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| format!("`{}` is not a safetensors file: {e}", path.display()))?;
    let info = metadata.metadata().clone().unwrap_or_default();
    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| format!("`{}` is not a safetensors file: {e}", path.display()))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        let values: Vec<f64> = match view.dtype() {
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes"))))
                .collect(),
            other => {
                return Err(format!(
                    "tensor `{name}` in `{}` has dtype {other:?}; only F32 and F64 are read",
                    path.display()
                ))
            }
        };
        let array = ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|e| e.to_string())?;
        tensors.insert(name, array);
    }
    Ok(Checkpoint {
        tensors,
        step: info.get("step").and_then(|s| s.parse().ok()).unwrap_or(0),
        file_hash: info.get("file_hash").cloned().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_tensors_give_equal_bytes() {
        let dir = std::env::temp_dir().join(format!("nnc-checkpoint-bytes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tensors = BTreeMap::from([
            ("a".to_string(), ArrayD::from_elem(vec![2, 3], 0.5)),
            ("b".to_string(), ArrayD::from_elem(vec![4], -1.25)),
        ]);
        let path = dir.join("c.safetensors");
        let mut files = Vec::new();
        for _ in 0..12 {
            save(&path, &tensors, 7, "abc").unwrap();
            files.push(std::fs::read(&path).unwrap());
        }
        assert!(files.windows(2).all(|w| w[0] == w[1]), "the bytes differ between saves");
        let loaded = load(&path).unwrap();
        assert_eq!((loaded.step, loaded.tensors), (7, tensors));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn checkpoints_round_trip_exactly() {
        let dir = std::env::temp_dir().join(format!("nnc-checkpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE);
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "a.w".to_string(),
            ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![0.1, -2.5, 1e-300, 3.0]).unwrap(),
        );
        tensors.insert("b".to_string(), ArrayD::from_shape_vec(IxDyn(&[]), vec![7.0]).unwrap());
        save(&path, &tensors, 42, "abc").unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.tensors, tensors);
        assert_eq!(back.step, 42);
        assert_eq!(back.file_hash, "abc");
        assert!(!path.with_extension("safetensors.tmp").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
