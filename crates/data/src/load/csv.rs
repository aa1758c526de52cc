//! Delimited text, parsed in parallel.
//!
//! The file is read in segments of [`SEGMENT_BYTES`], each cut at the last line end outside
//! quoted fields and parsed in one chunk per thread (so each thread parses whole records and
//! knows their line numbers), the chunks merged in file order. Memory holds the parsed columns
//! and one segment, never the whole file. Polars' own CSV reader is not used here: it cannot
//! tell which line a malformed row came from, and the quarantine needs exactly that.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::load::{Format, InvalidRow, InvalidRowPolicy, LoadOptions, Loaded, apply_overrides, finish, label_index};
use crate::table::{Column, ColumnData, ColumnKind, MISSING_CODE, Table};

const QUOTE: u8 = b'"';
/// Below this size one thread parses everything unless a thread count is given: splitting
/// would cost more than it saves.
pub(super) const MIN_PARALLEL_BYTES: usize = 1 << 20;
/// Bytes of the file read and parsed at a time.
pub(crate) const SEGMENT_BYTES: usize = 16 << 20;

pub(super) fn load(path: &Path, options: &LoadOptions) -> Result<Loaded> {
    load_in_segments(path, options, SEGMENT_BYTES)
}

/// [`load`], reading `segment` bytes at a time.
fn load_in_segments(path: &Path, options: &LoadOptions, segment: usize) -> Result<Loaded> {
    let io = |e| Error::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len() as usize;
    let mut first = Vec::with_capacity(size.min(segment) + 1);
    (&mut file).take(segment as u64).read_to_end(&mut first).map_err(io)?;
    if first.len() < segment {
        return parse(path, &first, options);
    }
    let mut parser = Parser::new(path, &first, options, Some(size))?;
    let mut buffer = first;
    loop {
        let cut = last_record_end(&buffer, parser.data_start);
        parser.segment(&buffer[parser.data_start..cut]);
        let rest = buffer.split_off(cut);
        parser.data_start = 0;
        buffer = rest;
        let before = buffer.len();
        (&mut file).take(segment as u64).read_to_end(&mut buffer).map_err(io)?;
        if buffer.len() == before {
            // End of file: what is left is the last record, without its line end.
            parser.segment(&buffer);
            return parser.finish();
        }
    }
}

pub(crate) fn parse(path: &Path, bytes: &[u8], options: &LoadOptions) -> Result<Loaded> {
    let mut parser = Parser::new(path, bytes, options, None)?;
    let start = parser.data_start;
    parser.segment(&bytes[start..]);
    parser.finish()
}

/// The parse of one file: what the header and the first rows told, the columns merged so far.
struct Parser<'a> {
    path: &'a Path,
    options: &'a LoadOptions,
    names: Vec<String>,
    kinds: Vec<ColumnKind>,
    label: usize,
    delimiter: u8,
    /// Where the data start in the bytes given to `new` (0 for later segments).
    data_start: usize,
    /// Lines before the next segment.
    lines_before: u64,
    /// Rows to reserve room for in the first chunk (an estimate for a file read in segments).
    reserve: usize,
    merger: Merger,
}

impl<'a> Parser<'a> {
    /// From the file's first bytes: delimiter, header, column kinds. `file_size`, for a file
    /// read in segments, sizes the columns' first allocation.
    fn new(path: &'a Path, bytes: &[u8], options: &'a LoadOptions, file_size: Option<usize>) -> Result<Self> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::EmptyFile { path: path.to_owned() });
        }
        let delimiter = options.delimiter.unwrap_or_else(|| detect_delimiter(bytes));
        let (names, data_start) = read_header(path, bytes, delimiter)?;
        let label = label_index(path, &names, options.label.as_deref())?;
        let mut kinds = infer_kinds(&bytes[data_start..], delimiter, names.len(), options);
        apply_overrides(path, &names, &mut kinds, label, options)?;
        let header_lines = 1 + memchr::memchr_iter(b'\n', &bytes[..data_start]).count() as u64;
        let lines_here = memchr::memchr_iter(b'\n', &bytes[data_start..]).count() + 1;
        // Lines per byte of what has been read, a little over, so the columns rarely regrow.
        let reserve = match file_size {
            None => lines_here,
            Some(size) => (lines_here as f64 * size as f64 / bytes.len().max(1) as f64 * 1.02) as usize + 1024,
        };
        let merger = Merger::new(&kinds);
        Ok(Self {
            path,
            options,
            names,
            kinds,
            label,
            delimiter,
            data_start,
            lines_before: header_lines,
            reserve,
            merger,
        })
    }

    /// Parses whole records (the end of the file may lack its line end) in parallel and merges
    /// them after the ones before.
    fn segment(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let threads = match self.options.threads {
            0 if bytes.len() < MIN_PARALLEL_BYTES => 1,
            _ => self.options.thread_count(),
        };
        let spec = ChunkSpec {
            names: &self.names,
            kinds: &self.kinds,
            delimiter: self.delimiter,
            missing: &self.options.missing_values,
        };
        // The file's first chunk reserves room for every row, so merging only appends.
        let first_reserve = std::mem::take(&mut self.reserve);
        let chunks = parse_in_chunks(bytes, self.lines_before, threads, first_reserve, &spec);
        self.lines_before += memchr::memchr_iter(b'\n', bytes).count() as u64;
        for chunk in chunks {
            self.merger.add(chunk);
        }
    }

    fn finish(self) -> Result<Loaded> {
        let (table, invalid) = self.merger.finish(self.path, self.names, self.label);
        if self.options.invalid_rows == InvalidRowPolicy::Fail
            && let Some(first) = invalid.first()
        {
            return Err(Error::InvalidRow {
                path: self.path.to_owned(),
                line: first.line,
                reason: first.reason.clone(),
            });
        }
        finish(self.path, table, invalid, Format::Csv)
    }
}

/// The end of the last whole record in `bytes` (after its line end), scanning from `start`
/// (a record start); `start` itself when no record ends in them.
pub(super) fn last_record_end(bytes: &[u8], start: usize) -> usize {
    let mut odd_quotes = false;
    let mut end = start;
    let mut at = start;
    for nl in memchr::memchr_iter(b'\n', &bytes[start..]) {
        let next = start + nl + 1;
        odd_quotes ^= memchr::memchr_iter(QUOTE, &bytes[at..next]).count() % 2 == 1;
        at = next;
        if !odd_quotes {
            end = next;
        }
    }
    end
}

/// The candidate that occurs most often outside quotes in the first line; `,` on a tie.
pub(super) fn detect_delimiter(bytes: &[u8]) -> u8 {
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or(bytes);
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0), (b'|', 0)];
    let mut in_quotes = false;
    for &b in first_line {
        if b == QUOTE {
            in_quotes = !in_quotes;
        } else if !in_quotes && let Some(c) = counts.iter_mut().find(|(d, _)| *d == b) {
            c.1 += 1;
        }
    }
    counts.iter().fold((b',', 0), |best, &c| if c.1 > best.1 { c } else { best }).0
}

fn reader(bytes: &[u8], delimiter: u8) -> ::csv::Reader<&[u8]> {
    ::csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(bytes)
}

pub(super) fn read_header(path: &Path, bytes: &[u8], delimiter: u8) -> Result<(Vec<String>, usize)> {
    let mut rdr = reader(bytes, delimiter);
    let mut record = ::csv::ByteRecord::new();
    let bad = |reason: String| Error::BadHeader { path: path.to_owned(), reason };
    if !rdr.read_byte_record(&mut record).map_err(|e| bad(e.to_string()))? {
        return Err(Error::EmptyFile { path: path.to_owned() });
    }
    let mut names = Vec::with_capacity(record.len());
    for (i, field) in record.iter().enumerate() {
        let name = std::str::from_utf8(field)
            .map_err(|_| bad(format!("column {} name is not valid UTF-8", i + 1)))?
            .trim()
            .trim_start_matches('\u{feff}');
        let name = if name.is_empty() { format!("column_{}", i + 1) } else { name.to_owned() };
        if names.contains(&name) {
            return Err(bad(format!("column name '{name}' appears twice")));
        }
        names.push(name);
    }
    Ok((names, rdr.position().byte() as usize))
}

fn is_missing(field: &[u8], missing: &[String]) -> bool {
    field.is_empty() || missing.iter().any(|m| m.as_bytes() == field)
}

fn trim(field: &[u8]) -> &[u8] {
    field.trim_ascii()
}

/// A column is numeric when, among the first rows, at least one value parses as a number and at
/// most one in twenty does not: a stray typo in a numeric column then quarantines its row
/// instead of turning the whole column into categories. Rows with the wrong field count are
/// skipped here; parsing reports them.
pub(super) fn infer_kinds(data: &[u8], delimiter: u8, width: usize, options: &LoadOptions) -> Vec<ColumnKind> {
    let mut parsed = vec![0usize; width];
    let mut unparsed = vec![0usize; width];
    let mut rdr = reader(data, delimiter);
    let mut record = ::csv::ByteRecord::new();
    let mut rows = 0;
    while rows < options.infer_rows && matches!(rdr.read_byte_record(&mut record), Ok(true)) {
        if record.len() != width {
            continue;
        }
        rows += 1;
        for (c, field) in record.iter().enumerate() {
            let field = trim(field);
            if is_missing(field, &options.missing_values) {
                continue;
            }
            if parse_number(field).is_some() {
                parsed[c] += 1;
            } else {
                unparsed[c] += 1;
            }
        }
    }
    (0..width)
        .map(|c| {
            let all_missing = parsed[c] + unparsed[c] == 0;
            if all_missing || (parsed[c] > 0 && unparsed[c] * 20 <= parsed[c]) {
                ColumnKind::Numeric
            } else {
                ColumnKind::Categorical
            }
        })
        .collect()
}

fn parse_number(field: &[u8]) -> Option<f64> {
    // Same grammar as `str::parse::<f64>` (decimal, exponent, inf, nan), straight from bytes.
    fast_float2::parse::<f64, _>(field).ok()
}

/// Parses whole records `bytes` (lines `first_line` on) in up to `threads` chunks cut at record
/// ends, each on its own thread; the chunks in file order. The first chunk reserves room for
/// `first_reserve` rows.
pub(super) fn parse_in_chunks(
    bytes: &[u8],
    first_line: u64,
    threads: usize,
    first_reserve: usize,
    spec: &ChunkSpec,
) -> Vec<Chunk> {
    let bounds = chunk_bounds(bytes, 0, threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (start, end) = (w[0], w[1]);
                // Lines before this chunk: those before `bytes`, plus every newline before it.
                let line = first_line + memchr::memchr_iter(b'\n', &bytes[..start]).count() as u64;
                let reserve = if start == 0 { first_reserve } else { 0 };
                s.spawn(move || parse_chunk(&bytes[start..end], line, reserve, spec))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("chunk parser does not panic")).collect()
    })
}

/// Chunk start offsets (plus the end), each at a line start outside quotes.
fn chunk_bounds(bytes: &[u8], data_start: usize, chunks: usize) -> Vec<usize> {
    let mut bounds = vec![data_start];
    let (mut scan, mut odd_quotes) = (data_start, false);
    for k in 1..chunks {
        let target = data_start + (bytes.len() - data_start) * k / chunks;
        if target <= scan {
            continue;
        }
        odd_quotes ^= memchr::memchr_iter(QUOTE, &bytes[scan..target]).count() % 2 == 1;
        scan = target;
        // Move to the first newline after which the quote count is even; none left (the last
        // record, without its line end): no more chunks.
        let mut at_line_start = false;
        while let Some(i) = memchr::memchr(b'\n', &bytes[scan..]) {
            let next = scan + i + 1;
            odd_quotes ^= memchr::memchr_iter(QUOTE, &bytes[scan..next]).count() % 2 == 1;
            scan = next;
            if !odd_quotes {
                at_line_start = true;
                break;
            }
        }
        if !at_line_start || scan >= bytes.len() {
            break;
        }
        bounds.push(scan);
    }
    bounds.push(bytes.len());
    bounds
}

pub(super) struct ChunkSpec<'a> {
    pub(super) names: &'a [String],
    pub(super) kinds: &'a [ColumnKind],
    pub(super) delimiter: u8,
    pub(super) missing: &'a [String],
}

enum ColumnBuf {
    Numeric(Vec<f64>),
    Categorical { codes: Vec<u32>, index: HashMap<Vec<u8>, u32>, levels: Vec<String> },
}

pub(super) struct Chunk {
    columns: Vec<ColumnBuf>,
    lines: Vec<u64>,
    invalid: Vec<InvalidRow>,
}

/// A field checked but not yet stored: a row is stored only when all of its fields are valid.
enum Cell {
    Number(f64),
    Category,
    Missing,
}

pub(super) fn parse_chunk(bytes: &[u8], first_line: u64, reserve: usize, spec: &ChunkSpec) -> Chunk {
    let width = spec.names.len();
    // Line ends bound the row count: reserving once avoids regrowing every column.
    let capacity = reserve.max(memchr::memchr_iter(b'\n', bytes).count() + 1);
    let mut columns: Vec<ColumnBuf> = spec
        .kinds
        .iter()
        .map(|k| match k {
            ColumnKind::Numeric => ColumnBuf::Numeric(Vec::with_capacity(capacity)),
            ColumnKind::Categorical => ColumnBuf::Categorical {
                codes: Vec::with_capacity(capacity),
                index: HashMap::new(),
                levels: Vec::new(),
            },
        })
        .collect();
    let mut chunk = Chunk { columns: Vec::new(), lines: Vec::with_capacity(capacity), invalid: Vec::new() };
    let mut rdr = reader(bytes, spec.delimiter);
    let mut record = ::csv::ByteRecord::new();
    let mut cells: Vec<Cell> = Vec::with_capacity(width);
    loop {
        let start = rdr.position().clone();
        let line_of = |pos: &::csv::Position| first_line + pos.line() - 1;
        let raw_to = |end: usize| {
            String::from_utf8_lossy(&bytes[start.byte() as usize..end]).trim_end_matches(['\r', '\n']).to_owned()
        };
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // The csv reader only fails on I/O, which cannot happen on a byte slice; record
                // it rather than lose the row.
                let line = line_of(&start);
                chunk.invalid.push(InvalidRow { line, column: None, reason: e.to_string(), raw: raw_to(bytes.len()) });
                break;
            }
        }
        let pos = record.position().cloned().unwrap_or(start.clone());
        let line = line_of(&pos);
        let end = rdr.position().byte() as usize;
        if record.len() != width {
            let reason = format!("expected {width} fields, found {}", record.len());
            chunk.invalid.push(InvalidRow { line, column: None, reason, raw: raw_to(end) });
            continue;
        }
        cells.clear();
        let mut fault: Option<(usize, String)> = None;
        for (c, field) in record.iter().enumerate() {
            let field = trim(field);
            let cell = if is_missing(field, spec.missing) {
                Cell::Missing
            } else if spec.kinds[c] == ColumnKind::Numeric {
                match parse_number(field) {
                    Some(x) if x.is_finite() => Cell::Number(x),
                    Some(x) => {
                        fault = Some((
                            c,
                            format!(
                                "{x} is not allowed in numeric column '{}' (leave the field empty for a missing value)",
                                spec.names[c]
                            ),
                        ));
                        break;
                    }
                    None => {
                        let shown = String::from_utf8_lossy(field);
                        fault =
                            Some((c, format!("column '{}' is numeric but '{shown}' is not a number", spec.names[c])));
                        break;
                    }
                }
            } else if let Err(e) = std::str::from_utf8(field) {
                fault = Some((
                    c,
                    format!(
                        "column '{}' holds bytes that are not valid UTF-8 (at byte {} of the field)",
                        spec.names[c],
                        e.valid_up_to()
                    ),
                ));
                break;
            } else {
                Cell::Category
            };
            cells.push(cell);
        }
        if let Some((c, reason)) = fault {
            chunk.invalid.push(InvalidRow { line, column: Some(spec.names[c].clone()), reason, raw: raw_to(end) });
            continue;
        }
        for ((column, cell), field) in columns.iter_mut().zip(&cells).zip(record.iter()) {
            match (column, cell) {
                (ColumnBuf::Numeric(v), Cell::Number(x)) => v.push(*x),
                (ColumnBuf::Numeric(v), _) => v.push(f64::NAN),
                (ColumnBuf::Categorical { codes, .. }, Cell::Missing) => codes.push(MISSING_CODE),
                (ColumnBuf::Categorical { codes, index, levels }, _) => {
                    let field = trim(field);
                    let code = match index.get(field) {
                        Some(&code) => code,
                        None => {
                            let code = levels.len() as u32;
                            // Checked as UTF-8 above.
                            levels.push(String::from_utf8_lossy(field).into_owned());
                            index.insert(field.to_vec(), code);
                            code
                        }
                    };
                    codes.push(code);
                }
            }
        }
        chunk.lines.push(line);
    }
    chunk.columns = columns;
    chunk
}

/// Joins chunks in file order; categorical levels keep their first-seen order.
pub(super) struct Merger {
    lines: Vec<u64>,
    invalid: Vec<InvalidRow>,
    merged: Vec<ColumnData>,
    global_index: Vec<HashMap<String, u32>>,
}

impl Merger {
    pub(super) fn new(kinds: &[ColumnKind]) -> Self {
        let merged = kinds
            .iter()
            .map(|k| match k {
                ColumnKind::Numeric => ColumnData::Numeric(Vec::new()),
                ColumnKind::Categorical => ColumnData::Categorical { codes: Vec::new(), levels: Vec::new() },
            })
            .collect();
        Self { lines: Vec::new(), invalid: Vec::new(), merged, global_index: vec![HashMap::new(); kinds.len()] }
    }

    /// Appends the next chunk in file order.
    pub(super) fn add(&mut self, chunk: Chunk) {
        if self.lines.is_empty() {
            self.lines = chunk.lines;
        } else {
            self.lines.extend(chunk.lines);
        }
        self.invalid.extend(chunk.invalid);
        for ((target, source), index) in self.merged.iter_mut().zip(chunk.columns).zip(self.global_index.iter_mut()) {
            match (target, source) {
                // The first chunk's vectors were reserved for every row: take them as they are.
                (ColumnData::Numeric(all), ColumnBuf::Numeric(part)) if all.is_empty() => *all = part,
                (ColumnData::Numeric(all), ColumnBuf::Numeric(part)) => all.extend(part),
                (
                    ColumnData::Categorical { codes: all, levels: all_levels },
                    ColumnBuf::Categorical { codes, levels, .. },
                ) => {
                    let remap: Vec<u32> = levels
                        .into_iter()
                        .map(|level| {
                            *index.entry(level.clone()).or_insert_with(|| {
                                all_levels.push(level);
                                (all_levels.len() - 1) as u32
                            })
                        })
                        .collect();
                    if all.is_empty() && remap.iter().enumerate().all(|(i, &c)| i as u32 == c) {
                        *all = codes;
                    } else {
                        all.extend(codes.into_iter().map(|c| if c == MISSING_CODE { c } else { remap[c as usize] }));
                    }
                }
                _ => unreachable!("chunks are built from the same kinds"),
            }
        }
    }

    /// The table of every chunk added, and the rows set aside.
    pub(super) fn finish(self, path: &Path, names: Vec<String>, label: usize) -> (Table, Vec<InvalidRow>) {
        let columns = names.into_iter().zip(self.merged).map(|(name, data)| Column { name, data }).collect();
        (Table { source: path.to_owned(), columns, label, lines: self.lines }, self.invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LoadOptions {
        LoadOptions::default()
    }

    fn load_str(text: &str, options: &LoadOptions) -> Result<Loaded> {
        parse(Path::new("t.csv"), text.as_bytes(), options)
    }

    #[test]
    fn quoted_commas_empty_fields_and_categories() {
        let text = "name,size,colour,label\n\"Smith, J\",1.5,red,yes\nLee,,\"blue\",no\n\"O\"\"Neil\",3,,yes\n";
        let loaded = load_str(text, &opts()).unwrap();
        let t = &loaded.table;
        assert!(loaded.invalid.is_empty());
        assert_eq!(t.rows(), 3);
        assert_eq!(t.columns[0].kind(), ColumnKind::Categorical);
        assert_eq!(t.columns[0].display(0), "Smith, J");
        assert_eq!(t.columns[0].display(2), "O\"Neil");
        assert_eq!(t.columns[1].kind(), ColumnKind::Numeric);
        assert!(t.columns[1].is_missing(1));
        assert!(t.columns[2].is_missing(2));
        assert_eq!(t.label_name(), "label");
        assert_eq!(t.class_names(), ["no", "yes"]);
        assert_eq!(t.lines, [2, 3, 4]);
    }

    #[test]
    fn a_stray_typo_does_not_make_a_numeric_column_categorical() {
        let mut text = String::from("v,y\n");
        for i in 0..40 {
            text.push_str(&format!("{i},a\n"));
        }
        text.push_str("1O,b\n");
        let loaded = load_str(&text, &opts()).unwrap();
        assert_eq!(loaded.table.columns[0].kind(), ColumnKind::Numeric);
        assert_eq!(loaded.invalid[0].line, 42);
        let words = load_str("v,y\n1,a\nmany,b\n", &opts()).unwrap();
        assert_eq!(words.table.columns[0].kind(), ColumnKind::Categorical);
    }

    #[test]
    fn detects_delimiters() {
        assert_eq!(detect_delimiter(b"a;b;c\n1;2;3"), b';');
        assert_eq!(detect_delimiter(b"a\tb\n"), b'\t');
        assert_eq!(detect_delimiter(b"\"x;y\",b,c\n"), b',');
        let loaded = load_str("a|b\n1|x\n2|y\n", &opts()).unwrap();
        assert_eq!(loaded.table.columns.len(), 2);
    }

    #[test]
    fn invalid_rows_are_quarantined_with_lines_and_reasons() {
        let text = "a,b,y\n1,2,p\n1,2\nx,2,q\n1,2,p,9\n4,nan,q\n5,6,q\n";
        let numeric_a = opts().with_numeric(vec!["a".into()]);
        let loaded = load_str(text, &numeric_a).unwrap();
        assert_eq!(loaded.table.rows(), 2);
        let lines: Vec<u64> = loaded.invalid.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        assert_eq!(loaded.invalid[0].reason, "expected 3 fields, found 2");
        assert_eq!(loaded.invalid[1].column.as_deref(), Some("a"));
        assert!(loaded.invalid[1].reason.contains("'x' is not a number"), "{}", loaded.invalid[1].reason);
        assert!(loaded.invalid[3].reason.contains("NaN is not allowed"), "{}", loaded.invalid[3].reason);
        assert_eq!(loaded.invalid[2].raw, "1,2,p,9");
        let err = load_str(text, &numeric_a.with_invalid_rows(InvalidRowPolicy::Fail)).unwrap_err();
        assert_eq!(err.to_string(), "t.csv:3: expected 3 fields, found 2");
    }

    #[test]
    fn overrides_and_missing_tokens() {
        let text = "zip,v,y\n1001,?,a\n2002,3,b\n";
        let o = opts().with_categorical(vec!["zip".into()]).with_missing_values(vec!["?".into()]);
        let t = load_str(text, &o).unwrap().table;
        assert_eq!(t.columns[0].kind(), ColumnKind::Categorical);
        assert_eq!(t.columns[1].kind(), ColumnKind::Numeric);
        assert!(t.columns[1].is_missing(0));
        let err = load_str(text, &opts().with_numeric(vec!["nope".into()])).unwrap_err();
        assert!(err.to_string().contains("numeric column 'nope' not found"), "{err}");
    }

    #[test]
    fn parallel_chunks_agree_with_one_thread_and_respect_quoted_newlines() {
        let mut text = String::from("id,note,x,y\n");
        for i in 0..20_000 {
            let note = if i % 7 == 0 { format!("\"multi\nline {i}\"") } else { format!("n{}", i % 13) };
            let x = if i % 11 == 0 { String::new() } else { format!("{}", i as f64 * 0.5) };
            text.push_str(&format!("{i},{note},{x},{}\n", if i % 3 == 0 { "a" } else { "b" }));
        }
        text.push_str("bad,row\n");
        let mut one = opts();
        one.threads = 1;
        let a = load_str(&text, &one).unwrap();
        let mut many = opts();
        many.threads = 4;
        let bytes = text.as_bytes();
        let bounds = chunk_bounds(bytes, 12, 4);
        assert!(bounds.len() > 2);
        let b = load_str(&text, &many).unwrap();
        // Compared without Debug output: the tables are large.
        assert!(a.table == b.table, "tables differ between 1 and 4 threads");
        assert!(a.invalid == b.invalid, "invalid rows differ: {:?} vs {:?}", a.invalid, b.invalid);
        assert!(a.table.columns[2].missing_count() > 1000);
        assert_eq!(a.table.rows(), 20_000);
        // Rows 0, 7, 14, ... span two lines.
        assert_eq!(a.table.lines[..9], [2, 4, 5, 6, 7, 8, 9, 10, 12]);
        let last_line = *a.table.lines.last().unwrap();
        assert_eq!(a.invalid[0].line, last_line + 2);
        for w in bounds.windows(2) {
            let chunk = &bytes[w[0]..w[1]];
            assert_eq!(memchr::memchr_iter(QUOTE, chunk).count() % 2, 0);
        }
    }

    #[test]
    fn bad_files() {
        let e = |t: &str| load_str(t, &opts()).unwrap_err().to_string();
        assert_eq!(e(""), "t.csv: file is empty (expected a header line)");
        assert_eq!(e("a,b\n"), "t.csv: no data rows after the header (line 1)");
        assert!(e("a,a\n1,2\n").contains("appears twice"));
        assert_eq!(
            load_str("a,b\n1,2\n", &opts().with_label("z")).unwrap_err().to_string(),
            "t.csv: label column 'z' not found; columns are: a, b"
        );
        let err = parse(Path::new("t.csv"), b"a,b\n\xff\xfe,x\n", &opts()).unwrap_err().to_string();
        assert!(err.starts_with("t.csv: all 1 data rows are invalid (first: line 2: column 'a'"), "{err}");
    }

    /// A file read in small segments parses to the same table, the same lines and the same
    /// quarantined rows as read whole, with quoted newlines and bad rows across the cuts.
    #[test]
    fn segments_give_the_whole_file_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        let mut text = String::from("x,note,y\n");
        for i in 0..3000 {
            let note = if i % 7 == 0 { "\"two\nlines, quoted\"".to_owned() } else { format!("n{}", i % 13) };
            let x = if i % 101 == 0 { "oops".to_owned() } else { format!("{}", i as f64 * 0.5) };
            text.push_str(&format!("{x},{note},{}\n", i % 2));
        }
        text.push_str("1.5,last,0");
        std::fs::write(&path, &text).unwrap();
        let options = LoadOptions { threads: 2, ..LoadOptions::default() }.with_numeric(vec!["x".into()]);
        let whole = parse(&path, text.as_bytes(), &options).unwrap();
        for segment in [997, 4096, 1 << 20] {
            let parts = load_in_segments(&path, &options, segment).unwrap();
            assert_eq!(parts.table, whole.table, "segment {segment}");
            assert_eq!(parts.table.lines, whole.table.lines, "segment {segment}");
            assert_eq!(parts.invalid, whole.invalid, "segment {segment}");
        }
        assert_eq!(whole.table.rows(), 3001 - 30);
        assert_eq!(whole.invalid.len(), 30);
    }
}
