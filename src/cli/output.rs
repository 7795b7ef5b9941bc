//! The one output convention of every listing command (`agents list`, `keys list`, `dead list`,
//! …): `--format table|json|csv`, rendered here from one description of the rows, and the
//! progress bars of long work.
//!
//! * `table` (the default): aligned columns for a person. Widths count terminal columns, not
//!   characters: a CJK character takes two (unicode-width), so Chinese names line up.
//! * `json`: one array of objects, the same field names in every row, full values (RFC 3339
//!   times, arrays as arrays, absent values as `null`).
//! * `csv`: a header row of the field names, then one line per row (RFC 4180 quoting by the csv
//!   crate); arrays joined with `;`, absent values empty.
//!
//! Progress bars go to standard error and only when it is a terminal: in a pipe, a log file or a
//! test they are hidden, and the work prints its summary line as before.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value};
use std::io::IsTerminal as _;
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

/// How a listing is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a person to read.
    #[default]
    Table,
    /// One JSON array of objects with stable field names.
    Json,
    /// A header row of the field names, then one row per item.
    Csv,
}

/// The `--format` argument every listing command flattens in.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct FormatArg {
    /// Output format: table (aligned columns), json (an array of objects) or csv (a header row,
    /// then one row per item).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The same as --format json (kept for scripts written before --format).
    #[arg(long, hide = true)]
    json: bool,
}

impl FormatArg {
    pub fn get(self) -> Format {
        if self.json { Format::Json } else { self.format }
    }
}

/// How a column shows its value in a table (JSON and CSV show the value itself).
#[derive(Debug, Clone, Copy)]
enum Show {
    Plain,
    /// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS` (UTC).
    Time,
    /// At most this many terminal columns, cut with `…`.
    Max(usize),
    /// Computed from the whole row (e.g. `load/cap` from two fields).
    With(fn(&Map<String, Value>) -> String),
}

#[derive(Debug, Clone)]
struct Column {
    key: &'static str,
    header: &'static str,
    right: bool,
    show: Show,
    /// Shown in a table (else only in CSV: a field a table shows inside another column).
    in_table: bool,
}

/// Rows to print: each row a JSON object; the columns say which fields a table and a CSV show,
/// in which order and under which heading.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    columns: Vec<Column>,
    rows: Vec<Map<String, Value>>,
}

impl Listing {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, key: &'static str, header: &'static str, right: bool, show: Show) -> Self {
        self.columns.push(Column {
            key,
            header,
            right,
            show,
            in_table: true,
        });
        self
    }

    /// A CSV column that a table leaves out (it shows the field inside another column).
    pub fn extra(mut self, key: &'static str) -> Self {
        self = self.push(key, key, false, Show::Plain);
        if let Some(c) = self.columns.last_mut() {
            c.in_table = false;
        }
        self
    }

    /// A left-aligned column showing field `key` under `header`.
    pub fn col(self, key: &'static str, header: &'static str) -> Self {
        self.push(key, header, false, Show::Plain)
    }

    /// A right-aligned column (numbers).
    pub fn num(self, key: &'static str, header: &'static str) -> Self {
        self.push(key, header, true, Show::Plain)
    }

    /// A time column: RFC 3339 in JSON and CSV, `YYYY-MM-DD HH:MM:SS` UTC in a table.
    pub fn time(self, key: &'static str, header: &'static str) -> Self {
        self.push(key, header, false, Show::Time)
    }

    /// A column cut to `max` terminal columns in a table (JSON and CSV keep the whole value).
    pub fn cut(self, key: &'static str, header: &'static str, max: usize) -> Self {
        self.push(key, header, false, Show::Max(max))
    }

    /// A table column computed from the row; JSON and CSV show field `key` itself.
    pub fn shown(
        self,
        key: &'static str,
        header: &'static str,
        right: bool,
        f: fn(&Map<String, Value>) -> String,
    ) -> Self {
        self.push(key, header, right, Show::With(f))
    }

    /// Adds a row (a JSON object; anything else is stored as `{"value": …}`).
    pub fn row(&mut self, row: Value) {
        match row {
            Value::Object(map) => self.rows.push(map),
            other => {
                let mut map = Map::new();
                map.insert("value".into(), other);
                self.rows.push(map);
            }
        }
    }

    /// The listing in `format`, ending with a newline.
    pub fn render(&self, format: Format) -> Result<String> {
        match format {
            Format::Table => Ok(self.table()),
            Format::Json => {
                let rows: Vec<&Map<String, Value>> = self.rows.iter().collect();
                Ok(format!("{}\n", serde_json::to_string_pretty(&rows)?))
            }
            Format::Csv => self.csv(),
        }
    }

    /// Prints the listing on standard output.
    pub fn print(&self, format: Format) -> Result<()> {
        print!("{}", self.render(format)?);
        Ok(())
    }

    fn table(&self) -> String {
        let columns: Vec<&Column> = self.columns.iter().filter(|c| c.in_table).collect();
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| columns.iter().map(|c| table_cell(c, row)).collect())
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].width())
                    .chain([c.header.width()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let headers: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
        let mut out = String::new();
        for line in std::iter::once(&headers).chain(&cells) {
            let last = line.len().saturating_sub(1);
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                let pad = " ".repeat(widths[i].saturating_sub(cell.width()));
                if columns[i].right {
                    text.push_str(&pad);
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    // The last column is not padded: no trailing blanks.
                    if i != last {
                        text.push_str(&pad);
                    }
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    fn csv(&self) -> Result<String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(self.columns.iter().map(|c| c.key))?;
        for row in &self.rows {
            w.write_record(self.columns.iter().map(|c| plain(row.get(c.key), "")))?;
        }
        Ok(String::from_utf8(w.into_inner()?)?)
    }
}

/// A value as text: strings as they are, arrays joined with `;`, `null` as `absent`.
fn plain(v: Option<&Value>, absent: &str) -> String {
    match v {
        None | Some(Value::Null) => absent.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().map(|i| plain(Some(i), "")).collect::<Vec<_>>().join(";"),
        Some(other) => other.to_string(),
    }
}

fn table_cell(c: &Column, row: &Map<String, Value>) -> String {
    let text = match c.show {
        Show::With(f) => f(row),
        Show::Time => {
            let raw = plain(row.get(c.key), "-");
            match chrono::DateTime::parse_from_rfc3339(&raw) {
                Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S").to_string(),
                Err(_) => raw,
            }
        }
        Show::Plain | Show::Max(_) => plain(row.get(c.key), "-"),
    };
    // A table row is one line: control characters (newlines in a reason) become spaces.
    let flat: String = text.chars().map(|ch| if ch.is_control() { ' ' } else { ch }).collect();
    match c.show {
        Show::Max(max) => fit(&flat, max),
        _ => flat,
    }
}

/// `s` cut to at most `max` terminal columns, ending with `…` when cut.
pub fn fit(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in s.chars() {
        let w = ch.width().unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        out.push(ch);
        used += w;
    }
    out.push('…');
    out
}

/// Where progress bars draw: standard error when it is a terminal, nowhere otherwise.
fn progress_target(terminal: bool) -> ProgressDrawTarget {
    if terminal {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A progress bar over `len` items (`what`: "requests", "dead letters"), drawn on standard
/// error only when it is a terminal.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    progress_on(len, what, std::io::stderr().is_terminal())
}

fn progress_on(len: u64, what: &str, terminal: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), progress_target(terminal));
    let template = format!("{{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// A spinner for work of unknown length (`what`: "running the retention job"), drawn on
/// standard error only when it is a terminal.
pub fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, progress_target(std::io::stderr().is_terminal()));
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn people() -> Listing {
        let mut l = Listing::new().col("id", "id").col("name", "name").num("load", "load");
        l.row(json!({"id": "a1", "name": "张伟", "load": 3}));
        l.row(json!({"id": "a2", "name": "Bob", "load": 12}));
        l.row(json!({"id": "a3", "name": "欧阳娜娜", "load": null}));
        l
    }

    #[test]
    fn table_columns_line_up_by_display_width_with_chinese_names() {
        let out = people().render(Format::Table).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        // The load column ends at the same terminal column on every line.
        let ends: Vec<usize> = lines.iter().map(|l| l.width()).collect();
        assert!(ends.iter().all(|&e| e == ends[0]), "{ends:?}\n{out}");
        // Each name cell is padded to the widest name, 欧阳娜娜 = 8 columns (4 characters).
        let sp = |n: usize| " ".repeat(n);
        assert_eq!(lines[1], format!("a1  张伟{}3", sp(9)));
        assert_eq!(lines[2], format!("a2  Bob{}12", sp(9)));
        assert_eq!(lines[3], format!("a3  欧阳娜娜{}-", sp(5)));
        assert_eq!(lines[0], "id  name      load");
    }

    #[test]
    fn char_counts_would_misalign_what_display_width_aligns() {
        // The test above would fail with chars().count(): 张伟 is 2 chars but 4 columns.
        assert_eq!("张伟".chars().count(), 2);
        assert_eq!("张伟".width(), 4);
    }

    #[test]
    fn json_is_an_array_of_objects_with_every_field() {
        let out = people().render(Format::Json).unwrap();
        let v: Vec<Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], json!({"id": "a1", "name": "张伟", "load": 3}));
        assert_eq!(v[2]["load"], Value::Null);
        assert_eq!(Listing::new().col("id", "id").render(Format::Json).unwrap(), "[]\n");
    }

    #[test]
    fn csv_has_a_header_of_field_names_and_quotes_what_needs_it() {
        let mut l = Listing::new().col("id", "ID").col("reason", "why").col("tags", "tags");
        l.row(json!({"id": "x", "reason": "said \"no\", twice\nthen left", "tags": ["a", "b"]}));
        l.row(json!({"id": "y", "reason": null, "tags": []}));
        let out = l.render(Format::Csv).unwrap();
        assert_eq!(
            out,
            "id,reason,tags\nx,\"said \"\"no\"\", twice\nthen left\",a;b\ny,,\n"
        );
        // And it reads back as the same fields.
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(&rows[0][1], "said \"no\", twice\nthen left");
        assert_eq!(
            r.headers().unwrap().iter().collect::<Vec<_>>(),
            ["id", "reason", "tags"]
        );
    }

    #[test]
    fn table_cuts_by_width_formats_times_and_computes_cells() {
        let mut l =
            Listing::new()
                .cut("reason", "reason", 6)
                .time("at", "at (UTC)")
                .shown("open", "load/cap", true, |r| format!("{}/{}", r["open"], r["max"]));
        l.row(json!({"reason": "超时未回复客户", "at": "2026-11-23T09:00:00+08:00", "open": 2, "max": 5}));
        let out = l.render(Format::Table).unwrap();
        let row = out.lines().nth(1).unwrap();
        assert!(row.starts_with("超时… "), "{out}");
        assert!(row.contains("2026-11-23 01:00:00"), "{out}");
        assert!(row.ends_with("2/5"), "{out}");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
    }

    #[test]
    fn progress_is_hidden_off_a_terminal() {
        assert!(progress_on(10, "things", false).is_hidden());
        assert!(progress_target(false).is_hidden());
    }
}
