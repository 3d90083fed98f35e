//! A small CSV reader for patient exports (RFC 4180: commas, `"quoted"` fields with `""` for a
//! quote and line breaks inside, LF or CRLF endings, an optional UTF-8 BOM).
//!
//! Fields land in caller-owned [`SecretBytes`] buffers that are wiped before each reuse, so no
//! identifier is left in a freed allocation. Rows are numbered as a spreadsheet shows them:
//! the header is row 1, blank lines count as (skipped) rows, and a quoted line break does not
//! start a new row.

use super::secret::SecretBytes;

/// The file is not CSV careline can read. Names the row; never quotes the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("row {row}: a quoted field is never closed (a `\"` is missing)")]
    UnclosedQuote { row: usize },
    #[error("row {row}: text follows a closing quote in a field (write `\"\"` for a quote)")]
    TextAfterQuote { row: usize },
}

/// Reads records one at a time from the bytes of a CSV file.
pub struct CsvReader<'a> {
    input: &'a [u8],
    position: usize,
    row: usize,
}

impl<'a> CsvReader<'a> {
    pub fn new(input: &'a [u8]) -> CsvReader<'a> {
        let bom = b"\xEF\xBB\xBF";
        let position = if input.starts_with(bom) { bom.len() } else { 0 };
        CsvReader {
            input,
            position,
            row: 0,
        }
    }

    /// Read the next non-blank record into `fields` (wiping what they held; surrounding spaces
    /// and tabs trimmed). Returns its row number, or `None` at the end of the file.
    pub fn next_record(
        &mut self,
        fields: &mut Vec<SecretBytes>,
    ) -> Result<Option<usize>, CsvError> {
        loop {
            if self.position >= self.input.len() {
                return Ok(None);
            }
            self.row += 1;
            let row = self.row;
            let used = self.read_record(fields, row)?;
            let blank = used == 1 && fields[0].is_empty();
            fields.truncate(used.max(1));
            if !blank {
                return Ok(Some(row));
            }
        }
    }

    /// Returns how many of `fields` the record filled.
    fn read_record(
        &mut self,
        fields: &mut Vec<SecretBytes>,
        row: usize,
    ) -> Result<usize, CsvError> {
        let mut used = 0;
        loop {
            if fields.len() == used {
                fields.push(SecretBytes::default());
            }
            let field = &mut fields[used];
            field.wipe();
            used += 1;
            let ended_record = self.read_field(field, row)?;
            trim(field);
            if ended_record {
                return Ok(used);
            }
        }
    }

    /// Fill `field`; returns whether the record ended after it (line break or end of file).
    fn read_field(&mut self, field: &mut SecretBytes, row: usize) -> Result<bool, CsvError> {
        let input = self.input;
        while self.position < input.len() && matches!(input[self.position], b' ' | b'\t') {
            self.position += 1;
        }
        if input.get(self.position) == Some(&b'"') {
            self.position += 1;
            loop {
                match input.get(self.position) {
                    None => return Err(CsvError::UnclosedQuote { row }),
                    Some(b'"') if input.get(self.position + 1) == Some(&b'"') => {
                        field.push(b'"');
                        self.position += 2;
                    }
                    Some(b'"') => {
                        self.position += 1;
                        break;
                    }
                    Some(&byte) => {
                        field.push(byte);
                        self.position += 1;
                    }
                }
            }
            while self.position < input.len() && matches!(input[self.position], b' ' | b'\t') {
                self.position += 1;
            }
            return match self.end_of_field() {
                Some(ended_record) => Ok(ended_record),
                None => Err(CsvError::TextAfterQuote { row }),
            };
        }
        loop {
            if let Some(ended_record) = self.end_of_field() {
                return Ok(ended_record);
            }
            field.push(input[self.position]);
            self.position += 1;
        }
    }

    /// At a field's end, consume the separator and say whether it ended the record; `None` if
    /// the field goes on.
    fn end_of_field(&mut self) -> Option<bool> {
        match self.input.get(self.position) {
            None => Some(true),
            Some(b',') => {
                self.position += 1;
                Some(false)
            }
            Some(b'\n') => {
                self.position += 1;
                Some(true)
            }
            Some(b'\r') if self.input.get(self.position + 1) == Some(&b'\n') => {
                self.position += 2;
                Some(true)
            }
            Some(_) => None,
        }
    }
}

fn trim(field: &mut SecretBytes) {
    let bytes = field.expose();
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |last| last + 1);
    if start == 0 && end == bytes.len() {
        return;
    }
    let mut trimmed = SecretBytes::with_capacity(end - start);
    trimmed.extend_from_slice(&bytes[start..end]);
    *field = trimmed;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
        let mut reader = CsvReader::new(text.as_bytes());
        let mut fields = Vec::new();
        let mut out = Vec::new();
        while let Some(row) = reader.next_record(&mut fields)? {
            let values = fields
                .iter()
                .map(|f| String::from_utf8_lossy(f.expose()).into_owned())
                .collect();
            out.push((row, values));
        }
        Ok(out)
    }

    fn row(number: usize, values: &[&str]) -> (usize, Vec<String>) {
        (number, values.iter().map(|v| (*v).to_owned()).collect())
    }

    #[test]
    fn plain_rows_split_on_commas() {
        assert_eq!(
            records("a,b,c\n1,2,3\n").expect("valid"),
            vec![row(1, &["a", "b", "c"]), row(2, &["1", "2", "3"])]
        );
    }

    #[test]
    fn crlf_bom_and_a_missing_final_newline_are_fine() {
        assert_eq!(
            records("\u{feff}a,b\r\n1,2").expect("valid"),
            vec![row(1, &["a", "b"]), row(2, &["1", "2"])]
        );
    }

    #[test]
    fn quoted_fields_may_hold_commas_quotes_and_line_breaks() {
        assert_eq!(
            records("a,b\n\"x, y\",\"say \"\"hi\"\"\nthere\"\nlast,row\n").expect("valid"),
            vec![
                row(1, &["a", "b"]),
                row(2, &["x, y", "say \"hi\"\nthere"]),
                row(3, &["last", "row"])
            ]
        );
    }

    #[test]
    fn empty_fields_are_kept_and_spaces_trimmed() {
        assert_eq!(
            records("a, ,c\n ,\"\", 3 \n").expect("valid"),
            vec![row(1, &["a", "", "c"]), row(2, &["", "", "3"])]
        );
    }

    #[test]
    fn blank_lines_are_skipped_but_counted_as_rows() {
        assert_eq!(
            records("a\n\n\nb\n").expect("valid"),
            vec![row(1, &["a"]), row(4, &["b"])]
        );
    }

    #[test]
    fn an_unclosed_quote_names_the_row_it_started_on() {
        assert_eq!(
            records("a\nb\n\"oops,1\n2\n"),
            Err(CsvError::UnclosedQuote { row: 3 })
        );
    }

    #[test]
    fn text_after_a_closing_quote_is_an_error() {
        assert_eq!(
            records("a\n\"x\"y,1\n"),
            Err(CsvError::TextAfterQuote { row: 2 })
        );
    }
}
