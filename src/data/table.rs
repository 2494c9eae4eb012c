//! The in-memory, dictionary-encoded table that the analyses work on.
//!
//! Loaders (polars) produce it; risk statistics consume it without knowing about polars.

/// Code marking a missing cell in [`Column::codes`].
pub const MISSING: u32 = u32::MAX;

/// One dictionary-encoded column: `codes[row]` indexes `dictionary`, or is [`MISSING`].
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name as in the source file.
    pub name: String,
    /// One code per row.
    pub codes: Vec<u32>,
    /// Distinct non-missing values, in first-seen order, as text.
    pub dictionary: Vec<String>,
    /// Whether every non-missing value is numeric (integers or floats).
    pub numeric: bool,
}

impl Column {
    /// Builds a column from optional string values (`None` = missing), encoding as it goes.
    pub fn from_values<'a>(name: &str, values: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut col = Self::from_keys(name, values, |s: &&str| (*s).to_owned());
        col.numeric = !col.dictionary.is_empty()
            && col
                .dictionary
                .iter()
                .all(|s| s.trim().parse::<f64>().is_ok());
        col
    }

    /// Builds a column from optional hashable keys, keeping the text of each distinct key
    /// (`numeric` is left false; callers that know better set it).
    pub fn from_keys<K: std::hash::Hash + Eq>(
        name: &str,
        values: impl IntoIterator<Item = Option<K>>,
        text: impl Fn(&K) -> String,
    ) -> Self {
        let mut index: rustc_hash::FxHashMap<K, u32> = rustc_hash::FxHashMap::default();
        let mut dictionary = Vec::new();
        let codes = values
            .into_iter()
            .map(|v| match v {
                None => MISSING,
                Some(k) => {
                    if let Some(&c) = index.get(&k) {
                        return c;
                    }
                    dictionary.push(text(&k));
                    let c = (dictionary.len() - 1) as u32;
                    index.insert(k, c);
                    c
                }
            })
            .collect();
        Self {
            name: name.to_owned(),
            codes,
            dictionary,
            numeric: false,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Number of missing cells.
    pub fn missing(&self) -> usize {
        self.codes.iter().filter(|&&c| c == MISSING).count()
    }

    /// Text of the value at `row`, `None` when missing.
    pub fn value(&self, row: usize) -> Option<&str> {
        match self.codes[row] {
            MISSING => None,
            c => Some(&self.dictionary[c as usize]),
        }
    }
}

/// A set of encoded columns of equal length, plus where they came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Where the rows came from (path or card name), for messages and reports.
    pub source: String,
    /// Number of rows.
    pub rows: usize,
    /// Encoded columns.
    pub columns: Vec<Column>,
}

impl Table {
    /// A table from columns; all must have the same length.
    pub fn new(source: &str, columns: Vec<Column>) -> Self {
        let rows = columns.first().map_or(0, Column::len);
        debug_assert!(columns.iter().all(|c| c.len() == rows));
        Self {
            source: source.to_owned(),
            rows,
            columns,
        }
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}
