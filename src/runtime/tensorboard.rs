//! TensorBoard event files: a run's scalars (the `step` and `eval` events of
//! `metrics.jsonl`) in, `events.out.tfevents.*` files in the run directory
//! out, so `tensorboard --logdir runs/` shows every run.
//!
//! The format is TensorFlow's documented record format, written here by
//! hand (no maintained Rust crate writes it without pulling in protobuf 2
//! and an image library): each record is its length (u64, little-endian),
//! the masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of
//! the data. The data is an `Event` protocol buffer; only five fields are
//! needed, encoded below: `Event.wall_time` (1, double), `Event.step` (2,
//! int64), `Event.file_version` (3, string), `Event.summary` (5), and in the
//! summary's repeated `value` (1) the `tag` (1, string) and `simple_value`
//! (2, float).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// CRC-32C (Castagnoli), the checksum of TFRecord framing.
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The masked CRC-32C of TFRecord framing.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = CRC32C.checksum(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its checksum, the data, its checksum.
pub fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// An `Event` with a wall time, a step and either a file version or a
/// summary of scalar values.
fn encode_event(wall_time: f64, step: i64, file_version: Option<&str>, scalars: &[(String, f32)]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, 1 << 3 | 1);
    out.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        varint(&mut out, 2 << 3);
        varint(&mut out, step as u64);
    }
    if let Some(version) = file_version {
        bytes_field(&mut out, 3, version.as_bytes());
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut entry = Vec::new();
            bytes_field(&mut entry, 1, tag.as_bytes());
            varint(&mut entry, 2 << 3 | 5);
            entry.extend_from_slice(&value.to_le_bytes());
            bytes_field(&mut summary, 1, &entry);
        }
        bytes_field(&mut out, 5, &summary);
    }
    out
}

/// The scalars an event of `metrics.jsonl` carries, as (step, tag, value):
/// `train/loss`, `train/lr`, `train/steps_per_s` from `step` events and
/// `validation/<metric>` from `eval` events. Other events carry none.
pub fn scalars_of(event: &Value) -> Option<(u64, Vec<(String, f64)>)> {
    let step = event["step"].as_u64()?;
    let values: Vec<(String, f64)> = match event["event"].as_str()? {
        "step" => ["loss", "lr", "steps_per_s"]
            .iter()
            .filter_map(|key| Some((format!("train/{key}"), event[*key].as_f64()?)))
            .collect(),
        "eval" => event["metrics"]
            .as_object()?
            .iter()
            .filter_map(|(name, value)| Some((format!("validation/{name}"), value.as_f64()?)))
            .collect(),
        _ => return None,
    };
    Some((step, values))
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An open event file.
pub struct EventWriter {
    file: File,
    pub path: PathBuf,
}

impl EventWriter {
    /// Creates a new event file in `dir` (one per invocation, so a resumed
    /// run adds a file beside the first; TensorBoard reads them in order).
    pub fn create(dir: &Path) -> std::io::Result<EventWriter> {
        let host = gethostname::gethostname().to_string_lossy().replace(['/', '\\'], "_");
        let name = format!("events.out.tfevents.{}.{host}.{}", now() as u64, std::process::id());
        let path = dir.join(name);
        let mut file = File::create(&path)?;
        file.write_all(&record(&encode_event(now(), 0, Some("brain.Event:2"), &[])))?;
        file.flush()?;
        Ok(EventWriter { file, path })
    }

    /// Writes the scalars of one event of `metrics.jsonl`, if it has any.
    pub fn write(&mut self, event: &Value) -> std::io::Result<()> {
        let Some((step, values)) = scalars_of(event) else {
            return Ok(());
        };
        let values: Vec<(String, f32)> = values.into_iter().map(|(t, v)| (t, v as f32)).collect();
        if values.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&record(&encode_event(now(), step as i64, None, &values)))?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masked CRC of TFRecord framing, checked against values from
    /// TensorFlow's own writer: an empty record's length header and the
    /// CRC-32C test vector "123456789" (0xe3069283 unmasked).
    #[test]
    fn crc_and_framing_match_tensorflow() {
        assert_eq!(CRC32C.checksum(b"123456789"), 0xe306_9283);
        let expected = 0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc(b"123456789"), expected);
        let framed = record(b"abc");
        assert_eq!(&framed[..8], &3u64.to_le_bytes());
        assert_eq!(&framed[12..15], b"abc");
        assert_eq!(framed.len(), 3 + 16);
    }

    /// One scalar event, byte for byte: wall time 1.0, step 300, tag "a",
    /// value 0.5.
    #[test]
    fn a_scalar_event_encodes_its_fields() {
        let bytes = encode_event(1.0, 300, None, &[("a".into(), 0.5)]);
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.0f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 0xac, 0x02]);
        // summary (field 5) holding one value (field 1) of tag "a" and
        // simple_value 0.5.
        expected.extend_from_slice(&[0x2a, 10, 0x0a, 8, 0x0a, 1, b'a', 0x15]);
        expected.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(bytes, expected);
    }
}
