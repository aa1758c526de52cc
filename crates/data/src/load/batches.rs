//! Delimited text read in batches, for files larger than memory (`trainbench predict`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::csv::{ChunkSpec, Merger, detect_delimiter, infer_kinds, last_record_end, parse_in_chunks, read_header};
use crate::error::{Error, Result};
use crate::load::{InvalidRow, LoadOptions, apply_overrides};
use crate::table::{Column, ColumnKind, MISSING_CODE, Table};

/// An iterator over batches of about `batch_bytes` of a delimited file, each a [`Table`] of the
/// batch's valid rows and the batch's invalid rows, with line numbers counted from the file start.
pub struct CsvBatches {
    path: PathBuf,
    file: File,
    names: Vec<String>,
    kinds: Vec<ColumnKind>,
    label: usize,
    /// The label column was not in the file: an empty one is added to every batch.
    synthetic_label: Option<String>,
    delimiter: u8,
    missing: Vec<String>,
    pending: Vec<u8>,
    /// 1 + the file's line ends before the first byte of `pending`.
    next_line: u64,
    /// Where the rows start, after the header.
    data_start: u64,
    /// Bytes of the file still to read (all of them unless [`CsvBatches::restrict`]ed).
    left: u64,
    batch_bytes: usize,
    eof: bool,
    bytes_read: u64,
    /// Threads a batch is parsed on (in chunks cut at record ends, merged in file order).
    threads: usize,
}

/// Opens `path` for batch reading. Column kinds are inferred from the first batch, then
/// `options.numeric` / `options.categorical` override them. When `options.label` names a column
/// that is not in the file (new data to predict), every batch gets an empty column of that name.
pub fn read_csv_batches(path: &Path, options: &LoadOptions, batch_bytes: usize) -> Result<CsvBatches> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let batch_bytes = batch_bytes.max(1 << 16);
    let mut pending = Vec::new();
    let mut eof = false;
    // Read until the header and some rows are in (or the file ends).
    while !eof && (pending.len() < batch_bytes.min(1 << 20) || memchr::memchr(b'\n', &pending).is_none()) {
        eof = fill(&mut file, &mut pending, batch_bytes.min(1 << 20)).map_err(|e| Error::io(path, e))? == 0;
    }
    if pending.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::EmptyFile { path: path.to_owned() });
    }
    let bytes_read = pending.len() as u64;
    let delimiter = options.delimiter.unwrap_or_else(|| detect_delimiter(&pending));
    let (mut names, data_start) = read_header(path, &pending, delimiter)?;
    let header_lines = 1 + memchr::memchr_iter(b'\n', &pending[..data_start]).count() as u64;
    let mut kinds = infer_kinds(&pending[data_start..], delimiter, names.len(), options);
    let (label, synthetic_label) = match options.label.as_deref().map(|l| names.iter().position(|n| n == l)) {
        None => (names.len() - 1, None),
        Some(Some(i)) => (i, None),
        Some(None) => (names.len(), options.label.clone()),
    };
    if synthetic_label.is_none() {
        apply_overrides(path, &names, &mut kinds, label, options)?;
    } else {
        // Overrides that name columns absent from new data are not this reader's concern.
        let mut known = options.clone();
        known.numeric.retain(|n| names.contains(n));
        known.categorical.retain(|n| names.contains(n));
        names.push(options.label.clone().unwrap_or_default());
        kinds.push(ColumnKind::Categorical);
        apply_overrides(path, &names, &mut kinds, label, &known)?;
        names.pop();
        kinds.pop();
    }
    pending.drain(..data_start);
    let left = file.metadata().map_err(|e| Error::io(path, e))?.len().saturating_sub(bytes_read);
    Ok(CsvBatches {
        path: path.to_owned(),
        file,
        names,
        kinds,
        label,
        synthetic_label,
        delimiter,
        missing: options.missing_values.clone(),
        pending,
        next_line: header_lines,
        data_start: data_start as u64,
        left,
        batch_bytes,
        eof,
        bytes_read,
        threads: options.thread_count(),
    })
}

/// Reads up to `amount` more bytes; returns how many (0 at end of file).
fn fill(file: &mut File, buf: &mut Vec<u8>, amount: usize) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + amount, 0);
    let n = file.read(&mut buf[start..])?;
    buf.truncate(start + n);
    Ok(n)
}

impl CsvBatches {
    /// Column names in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// 1 + the line ends before the next byte to read (the first data byte, when just opened).
    pub(crate) fn first_line(&self) -> u64 {
        self.next_line
    }

    /// Where the rows start: the byte after the header.
    pub(crate) fn data_start(&self) -> u64 {
        self.data_start
    }

    /// Reads only the records in bytes `range` of the file (one process's share; it starts at
    /// a record's start and ends at one's start or the file's end); `first_line` is 1 + the
    /// file's line ends before `range.start`.
    pub(crate) fn restrict(&mut self, range: Range<u64>, first_line: u64) -> Result<()> {
        self.file.seek(SeekFrom::Start(range.start)).map_err(|e| Error::io(&self.path, e))?;
        self.pending.clear();
        self.left = range.end.saturating_sub(range.start);
        self.eof = self.left == 0;
        self.next_line = first_line;
        self.bytes_read = 0;
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<(Table, Vec<InvalidRow>)>> {
        while !self.eof && self.pending.len() < self.batch_bytes {
            let amount = self.batch_bytes.min(usize::try_from(self.left).unwrap_or(usize::MAX));
            let n = fill(&mut self.file, &mut self.pending, amount).map_err(|e| Error::io(&self.path, e))?;
            self.bytes_read += n as u64;
            self.left -= n as u64;
            self.eof = n == 0 || self.left == 0;
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let cut = if self.eof && self.pending.len() <= self.batch_bytes {
            self.pending.len()
        } else {
            let window = &self.pending[..self.pending.len().min(self.batch_bytes)];
            match last_record_end(window, 0) {
                0 if self.eof => self.pending.len(),
                0 => {
                    // One record longer than a batch: read on until it ends.
                    self.batch_bytes *= 2;
                    return self.next_batch();
                }
                cut => cut,
            }
        };
        let spec =
            ChunkSpec { names: &self.names, kinds: &self.kinds, delimiter: self.delimiter, missing: &self.missing };
        let bytes = &self.pending[..cut];
        let threads = if bytes.len() < super::csv::MIN_PARALLEL_BYTES { 1 } else { self.threads };
        let chunks = parse_in_chunks(bytes, self.next_line, threads, 0, &spec);
        self.next_line += memchr::memchr_iter(b'\n', bytes).count() as u64;
        self.pending.drain(..cut);
        let label = if self.synthetic_label.is_some() { 0 } else { self.label };
        let mut merger = Merger::new(&self.kinds);
        chunks.into_iter().for_each(|chunk| merger.add(chunk));
        let (mut table, invalid) = merger.finish(&self.path, self.names.clone(), label);
        if let Some(name) = &self.synthetic_label {
            table.columns.push(Column {
                name: name.clone(),
                data: crate::table::ColumnData::Categorical {
                    codes: vec![MISSING_CODE; table.rows()],
                    levels: Vec::new(),
                },
            });
            table.label = table.columns.len() - 1;
        }
        Ok(Some((table, invalid)))
    }
}

impl Iterator for CsvBatches {
    type Item = Result<(Table, Vec<InvalidRow>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_the_file_with_right_lines_and_quoted_newlines() {
        batches_match_the_whole_load(30_000, 1 << 16);
        // Batches of 1 MiB and more are parsed in chunks on several threads.
        batches_match_the_whole_load(400_000, 3 << 19);
    }

    fn batches_match_the_whole_load(rows: usize, batch_bytes: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        let mut text = String::from("x,note,y\n");
        for i in 0..rows {
            let note = if i % 5 == 0 { "\"two\nlines\"".to_owned() } else { format!("n{i}") };
            text.push_str(&format!("{i},{note},{}\n", i % 2));
        }
        text.push_str("oops,x,1\n");
        std::fs::write(&path, &text).unwrap();
        let options = LoadOptions::default().with_numeric(vec!["x".into()]);
        let whole = crate::load::load(&path, &options).unwrap();
        let mut rows = 0;
        let mut lines = Vec::new();
        let mut invalid = Vec::new();
        let mut batches = 0;
        for batch in read_csv_batches(&path, &options, batch_bytes).unwrap() {
            let (table, bad) = batch.unwrap();
            rows += table.rows();
            lines.extend(table.lines.clone());
            invalid.extend(bad);
            batches += 1;
        }
        assert!(batches > 3, "{batches} batches");
        assert_eq!(rows, whole.table.rows());
        assert_eq!(lines, whole.table.lines);
        assert_eq!(invalid, whole.invalid);
    }

    #[test]
    fn a_missing_label_column_becomes_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.csv");
        std::fs::write(&path, "a,b\n1,x\n2,y\n").unwrap();
        let options = LoadOptions::default().with_label("target").with_categorical(vec!["b".into(), "gone".into()]);
        let (table, _) = read_csv_batches(&path, &options, 1 << 16).unwrap().next().unwrap().unwrap();
        assert_eq!(table.label_name(), "target");
        assert_eq!(table.label_column().missing_count(), 2);
        assert_eq!(table.column("b").unwrap().kind(), ColumnKind::Categorical);
    }
}
