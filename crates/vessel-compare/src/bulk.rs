//! The host's check of the probe's bulk stdout (`vessel-probe --stdout-mib`):
//! every numbered 64-byte line, in order, intact, nothing lost or doubled.
//! The line format is the probe's (`bin/vessel-probe/bulk.rs`): "bulk ",
//! ten digits, '.' padding, '\n'.

const LINE_LEN: usize = 64;

/// Checks the bulk lines in `stdout` (other lines, such as the probe's
/// start line and report, are skipped) for a run asked for `mib` MiB.
pub fn check(stdout: &[u8], mib: u64) -> Result<(), String> {
    let want = mib * (1 << 20) / LINE_LEN as u64;
    let mut next = 0u64;
    for (i, line) in stdout.split_inclusive(|&b| b == b'\n').enumerate() {
        if !line.starts_with(b"bulk ") {
            continue;
        }
        let n = parse(line).ok_or_else(|| {
            format!(
                "bulk stdout: output line {} is damaged: {:?}",
                i + 1,
                String::from_utf8_lossy(&line[..line.len().min(80)])
            )
        })?;
        if n != next {
            return Err(format!(
                "bulk stdout: line {next} expected, line {n} came (lost or reordered data)"
            ));
        }
        next += 1;
    }
    if next != want {
        return Err(format!(
            "bulk stdout: {next} of {want} lines arrived ({mib} MiB asked for)"
        ));
    }
    Ok(())
}

fn parse(line: &[u8]) -> Option<u64> {
    if line.len() != LINE_LEN || line[LINE_LEN - 1] != b'\n' {
        return None;
    }
    if !line[15..LINE_LEN - 1].iter().all(|&b| b == b'.') {
        return None;
    }
    std::str::from_utf8(&line[5..15]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u64) -> Vec<u8> {
        let mut l = format!("bulk {n:010}").into_bytes();
        l.resize(LINE_LEN - 1, b'.');
        l.push(b'\n');
        l
    }

    #[test]
    fn whole_output_passes_and_damage_is_named() {
        let lines = (1 << 20) / LINE_LEN as u64;
        let mut out = b"vessel-probe: started\n".to_vec();
        for n in 0..lines {
            out.extend(line(n));
        }
        out.extend(b"{\"probe\":1}\n");
        assert_eq!(check(&out, 1), Ok(()));
        // A lost line.
        let cut = 22 + 64 * 5;
        let mut lost = out.clone();
        lost.drain(cut..cut + 64);
        assert!(check(&lost, 1)
            .unwrap_err()
            .contains("line 5 expected, line 6"));
        // A flipped byte.
        let mut flipped = out.clone();
        flipped[cut + 30] = b'x';
        assert!(check(&flipped, 1).unwrap_err().contains("damaged"));
        // Short output.
        assert!(check(&out[..cut], 1).unwrap_err().contains("5 of 16384"));
    }
}
