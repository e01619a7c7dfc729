//! Check digits of the identifiers the generator reads and writes: Luhn (mod 10) for
//! LOINC codes, CDC race and ethnicity codes and NPIs, Verhoeff for SNOMED CT identifiers. The tables are validated
//! with them, so a mistyped code fails at load instead of going out in a resource.

/// The Luhn check digit to append to `payload` (digits 0–9, most significant first).
pub fn luhn(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Whether `code` is digits, a dash and their Luhn check digit: the form of LOINC codes
/// and of the CDC race and ethnicity codes (`2106-3`).
pub fn is_mod10(code: &str) -> bool {
    let Some((body, check)) = code.split_once('-') else {
        return false;
    };
    let (Some(body), Some(check)) = (digits(body), digits(check)) else {
        return false;
    };
    check.len() == 1 && !body.is_empty() && body.len() <= 7 && luhn(&body) == check[0]
}

/// Whether `id` is a well-formed SNOMED CT concept id (short format): 6–18 digits, no
/// leading zero, partition `00` or `10` (a concept), and a valid Verhoeff check digit.
pub fn is_sctid(id: &str) -> bool {
    let Some(d) = digits(id) else { return false };
    let n = d.len();
    if !(6..=18).contains(&n) || d[0] == 0 {
        return false;
    }
    let partition = (d[n - 3], d[n - 2]);
    matches!(partition, (0 | 1, 0)) && verhoeff_valid(&d)
}

fn digits(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().map(|b| b - b'0').collect())
}

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Whether the last digit of `d` is the Verhoeff check digit of the others.
fn verhoeff_valid(d: &[u8]) -> bool {
    let c = d.iter().rev().enumerate().fold(0u8, |c, (i, &digit)| {
        VERHOEFF_D[usize::from(c)][usize::from(VERHOEFF_P[i % 8][usize::from(digit)])]
    });
    c == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_matches_the_cms_npi_example() {
        // CMS: NPI 123456789 + check digit 3, computed with the 80840 prefix.
        let payload = [8, 0, 8, 4, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(luhn(&payload), 3);
    }

    #[test]
    fn loinc_and_cdc_race_check_digits() {
        for ok in [
            "8867-4", "8480-6", "59408-5", "85354-9", "11506-3", "2106-3", "2186-5",
        ] {
            assert!(is_mod10(ok), "{ok}");
        }
        for bad in ["8867-5", "8867", "-4", "88a7-4", "8867-44"] {
            assert!(!is_mod10(bad), "{bad}");
        }
    }

    #[test]
    fn snomed_check_digits() {
        // Including the root concept and codes whose check needs every permutation row.
        for ok in [
            "138875005",
            "404684003",
            "22298006",
            "44054006",
            "195967001",
            "21897009",
            "32485007",
        ] {
            assert!(is_sctid(ok), "{ok}");
        }
        // One digit changed, a transposition, a description-id partition, a leading zero.
        for bad in ["44054007", "38341030", "44054016", "044054006", "12"] {
            assert!(!is_sctid(bad), "{bad}");
        }
    }

    #[test]
    fn verhoeff_permutation_rows_are_powers_of_the_first() {
        for row in 1..8 {
            for x in 0..10 {
                let next = VERHOEFF_P[1][usize::from(VERHOEFF_P[row - 1][x])];
                assert_eq!(VERHOEFF_P[row][x], next, "row {row}, column {x}");
            }
        }
    }
}
