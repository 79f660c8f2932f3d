//! A strict parser of the Prometheus text exposition format (0.0.4) for the tests that scrape
//! `/metrics`: every sample must belong to a family declared by `# TYPE` before it, names and
//! labels must be well formed, values must be numbers, and a histogram's buckets must be
//! cumulative with `+Inf` equal to its `_count`. Any violation is an error naming the line.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One scrape: the declared families (name → type) and the samples in order.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub families: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// Parses `{a="x",b="y"}` at the start of `text`; answers the labels and the rest.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_name(name) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((at, '"')) => break at,
                Some((_, '\n')) | None => return Err("unterminated label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} repeated"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// The family a sample name belongs to, given the declared families.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, String>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && families
                .get(base)
                .is_some_and(|kind| kind == "histogram" || kind == "summary")
        {
            return Some(base);
        }
    }
    None
}

pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    for (number, line) in text.lines().enumerate() {
        let at = |error: String| format!("line {}: {error}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_name(name) {
                        return Err(at("bad family name".into()));
                    }
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if scrape
                        .families
                        .insert(name.to_owned(), kind.to_owned())
                        .is_some()
                    {
                        return Err(at("family declared twice".into()));
                    }
                }
                (Some("HELP"), Some(name), _) if is_name(name) => {}
                (Some("HELP"), ..) => return Err(at("bad HELP".into())),
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(at("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .and_then(parse_value)
            .ok_or_else(|| at("bad value".into()))?;
        if let Some(timestamp) = fields.next()
            && timestamp.parse::<i64>().is_err()
        {
            return Err(at("bad timestamp".into()));
        }
        if fields.next().is_some() {
            return Err(at("trailing text".into()));
        }
        if family_of(name, &scrape.families).is_none() {
            return Err(at("sample before its # TYPE".into()));
        }
        scrape.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&scrape)?;
    Ok(scrape)
}

/// A histogram series: its labels without `le`.
type SeriesKey = Vec<(String, String)>;

fn check_histograms(scrape: &Scrape) -> Result<(), String> {
    for (family, kind) in &scrape.families {
        if kind != "histogram" {
            continue;
        }
        // Series: the labels without `le`.
        let mut buckets: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in scrape
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let le = sample
                .labels
                .get("le")
                .and_then(|le| parse_value(le))
                .ok_or_else(|| format!("{family}: bucket without a numeric le"))?;
            let key = sample
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            buckets.entry(key).or_default().push((le, sample.value));
        }
        for (key, series) in buckets {
            let mut last = (f64::NEG_INFINITY, 0.0);
            for &(le, count) in &series {
                if le <= last.0 || count < last.1 {
                    return Err(format!("{family}{key:?}: buckets not cumulative"));
                }
                last = (le, count);
            }
            if last.0 != f64::INFINITY {
                return Err(format!("{family}{key:?}: no +Inf bucket"));
            }
            let labels: BTreeMap<String, String> = key.into_iter().collect();
            let count = scrape
                .samples
                .iter()
                .find(|s| s.name == format!("{family}_count") && s.labels == labels)
                .ok_or_else(|| format!("{family}{labels:?}: no _count"))?;
            if count.value != last.1 {
                return Err(format!(
                    "{family}{labels:?}: +Inf bucket differs from _count"
                ));
            }
        }
    }
    Ok(())
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_exposition_parses() {
        let text = "# HELP h A histogram.\n# TYPE h histogram\n\
            h_bucket{route=\"/a\\\"b\",le=\"0.1\"} 1\nh_bucket{route=\"/a\\\"b\",le=\"+Inf\"} 2\n\
            h_sum{route=\"/a\\\"b\"} 0.5\nh_count{route=\"/a\\\"b\"} 2\n# TYPE c counter\nc 3\n";
        let scrape = parse(text).unwrap();
        assert_eq!(scrape.sum("h_count", &[("route", "/a\"b")]), 2.0);
        assert_eq!(scrape.sum("c", &[]), 3.0);
    }

    #[test]
    fn malformed_expositions_are_refused() {
        for bad in [
            "c 1\n",
            "# TYPE c counter\nc{a=\"x\" 1\n",
            "# TYPE c counter\nc{a=x} 1\n",
            "# TYPE c counter\nc one\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
