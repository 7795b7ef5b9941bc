//! Telling the customer's new words from the quoted history below (or above) them.

// ---------------------------------------------------------------------------------------------
// Quoted history

/// Split a message's text into the new text and the quoted history.
///
/// Top-posted replies (Outlook, Foxmail, QQ mail, Gmail's "On … wrote:" without `>` in HTML)
/// put everything after a separator or header block in the history. `>` quoting may also be
/// interleaved with answers (bottom posting): only the `>` lines and the attribution line above
/// them are history, and the answers stay in the body, each run separated by a blank line.
pub(crate) fn split_quoted(text: &str) -> (String, Option<String>) {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut quoted = vec![false; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if starts_history(&lines, i) {
            quoted[i..].iter_mut().for_each(|q| *q = true);
            break;
        }
        if let Some((n, strong)) = attribution(&lines, i) {
            let next = (i + n..lines.len()).find(|&j| !is_blank(lines[j]));
            let quote_follows = next.is_none_or(|j| is_quote_line(lines[j]));
            if quote_follows {
                quoted[i..i + n].iter_mut().for_each(|q| *q = true);
                i += n;
                continue;
            }
            if strong {
                quoted[i..].iter_mut().for_each(|q| *q = true);
                break;
            }
        }
        if is_quote_line(lines[i]) {
            quoted[i] = true;
        }
        i += 1;
    }
    // Blank lines inside a quoted block belong to it. Two linear passes (a run of blank lines
    // can be long in a hostile message): is the nearest non-blank line before / after quoted?
    let blank: Vec<bool> = lines.iter().map(|l| is_blank(l)).collect();
    let mut quoted_before = vec![false; lines.len()];
    let mut last = false;
    for j in 0..lines.len() {
        quoted_before[j] = last;
        if !blank[j] {
            last = quoted[j];
        }
    }
    let mut next = false;
    for j in (0..lines.len()).rev() {
        if blank[j] {
            quoted[j] = quoted[j] || (quoted_before[j] && next);
        } else {
            next = quoted[j];
        }
    }
    let body = join_runs(&lines, &quoted, false);
    let history = join_runs(&lines, &quoted, true);
    (body, (!history.is_empty()).then_some(history))
}

/// Join the runs of lines whose flag equals `want`, each without blank edge lines, separated
/// by one blank line.
fn join_runs(lines: &[&str], quoted: &[bool], want: bool) -> String {
    let mut runs: Vec<String> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut flush = |current: &mut Vec<&str>| {
        let start = current.iter().position(|l| !is_blank(l));
        let end = current.iter().rposition(|l| !is_blank(l));
        if let (Some(s), Some(e)) = (start, end) {
            runs.push(current[s..=e].join("\n"));
        }
        current.clear();
    };
    for (line, &q) in lines.iter().zip(quoted) {
        if q == want {
            current.push(line);
        } else {
            flush(&mut current);
        }
    }
    flush(&mut current);
    runs.join("\n\n")
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

fn is_quote_line(line: &str) -> bool {
    line.trim_start_matches([' ', '\t']).starts_with('>')
}

/// Separator lines and header blocks after which everything is history.
fn starts_history(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim();
    // "-----Original Message-----", "------------------ 原始邮件 ------------------", …
    let dashes = |c: char| c == '-' || c == '—' || c == '_' || c == '=';
    let inner = line.trim_start_matches(dashes);
    let leading = line.len() - inner.len();
    let inner_trimmed = inner.trim_end_matches(dashes);
    let trailing = inner.len() - inner_trimmed.len();
    if leading >= 2 && trailing >= 2 {
        let label = inner_trimmed.trim().to_lowercase();
        if matches!(
            label.as_str(),
            "original message"
                | "original"
                | "原始邮件"
                | "原始郵件"
                | "原邮件"
                | "原郵件"
                | "回复的原邮件"
                | "回覆的原郵件"
                | "邮件原文"
        ) {
            return true;
        }
    }
    // Outlook draws a line of underscores above its header block.
    if line.len() >= 10 && line.chars().all(|c| c == '_') {
        let next = (i + 1..lines.len()).find(|&j| !is_blank(lines[j]));
        return next.is_some_and(|j| header_block(lines, j));
    }
    header_block(lines, i)
}

/// A "From: … / Sent: …" or "发件人： … / 发送时间： …" block (Outlook, Foxmail, QQ mail).
fn header_block(lines: &[&str], i: usize) -> bool {
    const FROM: &[&str] = &["from", "发件人", "寄件者", "寄件人", "發件人"];
    const SENT: &[&str] = &[
        "sent",
        "date",
        "发送时间",
        "发送日期",
        "时间",
        "日期",
        "寄件日期",
        "發送時間",
        "傳送時間",
        "傳送日期",
    ];
    let label_in = |line: &str, set: &[&str]| header_label(line).is_some_and(|l| set.contains(&l.as_str()));
    label_in(lines[i], FROM) && lines.iter().skip(i + 1).take(3).any(|l| label_in(l, SENT))
}

/// The label of a "Label: value" line, lower-cased, without bold markers; `None` if none.
fn header_label(line: &str) -> Option<String> {
    let line = line.trim_start();
    let colon = line.find([':', '：'])?;
    let label = line[..colon].trim().trim_matches('*').trim();
    if label.is_empty() || label.chars().count() > 12 {
        return None;
    }
    Some(label.to_lowercase())
}

/// An attribution line ("On … wrote:", "在 … 写道：", "张三 <x> 于 … 写道：") starting at `i`,
/// possibly wrapped over up to three lines: `(line count, strong)`. A strong one starts the
/// history even when no `>` lines follow; a weak one ("Jane wrote:") only heads a `>` block.
fn attribution(lines: &[&str], i: usize) -> Option<(usize, bool)> {
    let ends = |l: &str| {
        let l = l.trim_end();
        l.ends_with("wrote:")
            || l.ends_with("写道：")
            || l.ends_with("写道:")
            || l.ends_with("寫道：")
            || l.ends_with("寫道:")
    };
    let strong =
        |first: &str, last: &str| first.trim_start().starts_with("On ") || !last.trim_end().ends_with("wrote:");
    if ends(lines[i]) {
        return Some((1, strong(lines[i], lines[i])));
    }
    // Clients hard-wrap a long attribution ("On Mon, … Support <\nsupport@example.com> wrote:",
    // "张三 <zhangsan@\nexample.com> 于2024年5月6日周一 10:00写道："). A wrapped one starts a
    // paragraph and names the sender's address or opens with "On"/"在".
    let starts_paragraph = i == 0 || is_blank(lines[i - 1]);
    if !starts_paragraph || is_blank(lines[i]) {
        return None;
    }
    let first = lines[i].trim_start();
    let mut has_address = first.contains('@');
    let opener = first.starts_with("On ") || first.starts_with('在');
    for n in 2..=3 {
        let line = lines.get(i + n - 1)?;
        if is_blank(line) {
            return None;
        }
        has_address |= line.contains('@');
        if ends(line) {
            return (opener || has_address).then(|| (n, strong(first, line)));
        }
    }
    None
}
