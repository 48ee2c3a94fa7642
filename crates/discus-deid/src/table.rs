//! DICOM PS3.15 Annex E, Table E.1-1 (Application Level Confidentiality Profile Attributes) as data,
//! and the rules that turn a row plus the chosen options into the one action discus takes.
//!
//! The table lives in `table_e1_1.csv` (compiled in): one row per attribute of the standard's table
//! (621 rows, the 2024/2025 edition), with the basic-profile action and the action of every option
//! column. discus implements the options in [`Options`]; the other columns (Retain Safe Private beyond
//! the safe list, Retain Institution Identity, Full Dates, Clean Structured Content, Clean Graphics)
//! are carried as data but never applied.

use dicom_core::{Tag, VR};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The table as compiled into the crate.
pub const TABLE_CSV: &str = include_str!("table_e1_1.csv");

/// An action code of Table E.1-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// D: replace with a non-zero-length dummy value consistent with the VR.
    D,
    /// Z: replace with a zero-length value (or a dummy).
    Z,
    /// X: remove.
    X,
    /// K: keep (sequences are still processed item by item).
    K,
    /// C: clean (keep, with identifying information removed or replaced).
    C,
    /// U: replace a UID with a consistently mapped one.
    U,
    /// X/Z: X unless Z is needed for IOD conformance.
    XZ,
    /// X/D: X unless D is needed for IOD conformance.
    XD,
    /// X/Z/D: X unless Z or D is needed for IOD conformance.
    XZD,
    /// Z/D: Z unless D is needed for IOD conformance.
    ZD,
    /// X/Z/U*: X unless Z, or replacing the UIDs of the contained references, is needed.
    XZUStar,
}

impl Code {
    /// Parses the code as Table E.1-1 writes it (`D`, `X/Z`, `X/Z/U*` ...); `None` for anything else.
    pub fn parse(s: &str) -> Option<Code> {
        Some(match s {
            "D" => Code::D,
            "Z" => Code::Z,
            "X" => Code::X,
            "K" => Code::K,
            "C" => Code::C,
            "U" => Code::U,
            "X/Z" => Code::XZ,
            "X/D" => Code::XD,
            "X/Z/D" => Code::XZD,
            "Z/D" => Code::ZD,
            "X/Z/U*" => Code::XZUStar,
            _ => return None,
        })
    }

    /// The code as Table E.1-1 writes it, e.g. `X/Z/D`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::D => "D",
            Code::Z => "Z",
            Code::X => "X",
            Code::K => "K",
            Code::C => "C",
            Code::U => "U",
            Code::XZ => "X/Z",
            Code::XD => "X/D",
            Code::XZD => "X/Z/D",
            Code::ZD => "Z/D",
            Code::XZUStar => "X/Z/U*",
        }
    }
}

/// Which attributes a row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagPattern {
    /// One attribute, `(gggg,eeee)`.
    Exact(Tag),
    /// `(50xx,xxxx)`: every element of the curve groups 5000-501E (even).
    CurveGroups,
    /// `(60xx,eeee)`: element `eeee` of the overlay groups 6000-601E (even).
    OverlayGroups(u16),
    /// `(gggg,eeee)` with odd `gggg`: private attributes.
    Private,
}

impl TagPattern {
    fn parse(s: &str) -> Option<TagPattern> {
        let (g, e) = s.split_once(',')?;
        if g == "gggg" {
            return Some(TagPattern::Private);
        }
        if g == "50xx" && e == "xxxx" {
            return Some(TagPattern::CurveGroups);
        }
        let e = u16::from_str_radix(e, 16).ok()?;
        if g == "60xx" {
            return Some(TagPattern::OverlayGroups(e));
        }
        Some(TagPattern::Exact(Tag(u16::from_str_radix(g, 16).ok()?, e)))
    }

    /// The pattern as the standard writes it, e.g. `(0010,0010)`, `(60xx,3000)`.
    pub fn display(&self) -> String {
        match self {
            TagPattern::Exact(t) => format!("({:04X},{:04X})", t.0, t.1),
            TagPattern::CurveGroups => "(50xx,xxxx)".into(),
            TagPattern::OverlayGroups(e) => format!("(60xx,{e:04X})"),
            TagPattern::Private => "(gggg,eeee), gggg odd".into(),
        }
    }
}

/// The columns of the table discus reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// The Basic Profile column.
    Basic,
    /// Retain Safe Private Option.
    RetainSafePrivate,
    /// Retain UIDs Option.
    RetainUids,
    /// Retain Device Identity Option.
    RetainDeviceIdentity,
    /// Retain Institution Identity Option.
    RetainInstitutionIdentity,
    /// Retain Patient Characteristics Option.
    RetainPatientCharacteristics,
    /// Retain Longitudinal Temporal Information with Full Dates Option.
    RetainLongFullDates,
    /// Retain Longitudinal Temporal Information with Modified Dates Option.
    RetainLongModifiedDates,
    /// Clean Descriptors Option.
    CleanDescriptors,
    /// Clean Structured Content Option.
    CleanStructuredContent,
    /// Clean Graphics Option.
    CleanGraphics,
}

impl Column {
    /// Every column, in the order of `table_e1_1.csv` and [`Row::options`].
    pub const ALL: [Column; 11] = [
        Column::Basic,
        Column::RetainSafePrivate,
        Column::RetainUids,
        Column::RetainDeviceIdentity,
        Column::RetainInstitutionIdentity,
        Column::RetainPatientCharacteristics,
        Column::RetainLongFullDates,
        Column::RetainLongModifiedDates,
        Column::CleanDescriptors,
        Column::CleanStructuredContent,
        Column::CleanGraphics,
    ];

    /// The CSV header of the column.
    pub fn header(self) -> &'static str {
        match self {
            Column::Basic => "basic",
            Column::RetainSafePrivate => "retain_safe_private",
            Column::RetainUids => "retain_uids",
            Column::RetainDeviceIdentity => "retain_device_identity",
            Column::RetainInstitutionIdentity => "retain_institution_identity",
            Column::RetainPatientCharacteristics => "retain_patient_characteristics",
            Column::RetainLongFullDates => "retain_long_full_dates",
            Column::RetainLongModifiedDates => "retain_long_modified_dates",
            Column::CleanDescriptors => "clean_descriptors",
            Column::CleanStructuredContent => "clean_structured_content",
            Column::CleanGraphics => "clean_graphics",
        }
    }
}

/// One row of Table E.1-1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The attribute(s) the row covers.
    pub pattern: TagPattern,
    /// The attribute name, as the standard spells it.
    pub name: String,
    /// Whether the standard says the attribute is in a standard composite IOD.
    pub in_std_iod: bool,
    /// The Basic Profile action.
    pub basic: Code,
    /// The action of each option column (index as [`Column::ALL`]; `None` when the cell is empty).
    pub options: [Option<Code>; 11],
}

impl Row {
    /// The action of `column`; `None` when its cell is empty.
    pub fn code(&self, column: Column) -> Option<Code> {
        let i = Column::ALL.iter().position(|c| *c == column).unwrap();
        self.options[i]
    }
}

/// The options of the profile that discus supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// Retain Longitudinal Temporal Information with Modified Dates: shift dates by a per-patient offset.
    pub retain_longitudinal_modified_dates: bool,
    /// Retain Patient Characteristics (sex, age, size, weight, ...).
    pub retain_patient_characteristics: bool,
    /// Retain Device Identity (serial numbers, station names, ...).
    pub retain_device_identity: bool,
    /// Retain UIDs: keep every UID as it is.
    pub retain_uids: bool,
    /// Clean Descriptors: keep descriptions with identifying words removed, rather than removing them.
    pub clean_descriptors: bool,
    /// Keep the private attributes of the safe list ([`crate::deid::SAFE_PRIVATE`]) rather than
    /// removing every private attribute. Not the standard's Retain Safe Private Option (whose list is
    /// much longer); not claimed in the de-identification method code sequence.
    pub keep_safe_private: bool,
}

impl Options {
    /// The option columns in force, in the order they take precedence (retaining before cleaning).
    pub fn columns(&self) -> Vec<Column> {
        let mut out = Vec::new();
        if self.retain_uids {
            out.push(Column::RetainUids);
        }
        if self.retain_device_identity {
            out.push(Column::RetainDeviceIdentity);
        }
        if self.retain_patient_characteristics {
            out.push(Column::RetainPatientCharacteristics);
        }
        if self.retain_longitudinal_modified_dates {
            out.push(Column::RetainLongModifiedDates);
        }
        if self.clean_descriptors {
            out.push(Column::CleanDescriptors);
        }
        out
    }

    /// The CID 7050 codes (scheme DCM) of the profile and of exactly the options applied:
    /// `(code value, code meaning)`.
    pub fn method_codes(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = vec![("113100", "Basic Application Confidentiality Profile")];
        if self.clean_descriptors {
            out.push(("113105", "Clean Descriptors Option"));
        }
        if self.retain_longitudinal_modified_dates {
            out.push((
                "113107",
                "Retain Longitudinal Temporal Information Modified Dates Option",
            ));
        }
        if self.retain_patient_characteristics {
            out.push(("113108", "Retain Patient Characteristics Option"));
        }
        if self.retain_device_identity {
            out.push(("113109", "Retain Device Identity Option"));
        }
        if self.retain_uids {
            out.push(("113110", "Retain UIDs Option"));
        }
        out
    }

    /// Reads the options back from the code values of a de-identification method code sequence.
    pub fn from_method_codes<'a>(codes: impl IntoIterator<Item = &'a str>) -> Options {
        let mut o = Options::default();
        for c in codes {
            match c.trim() {
                "113105" => o.clean_descriptors = true,
                "113107" => o.retain_longitudinal_modified_dates = true,
                "113108" => o.retain_patient_characteristics = true,
                "113109" => o.retain_device_identity = true,
                "113110" => o.retain_uids = true,
                _ => {}
            }
        }
        o
    }
}

/// An error in the compiled-in table (a build defect, caught by the tests).
#[derive(Debug, thiserror::Error)]
#[error("table_e1_1.csv line {line}: {message}")]
pub struct TableError {
    /// The 1-based line of `table_e1_1.csv`.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Parses a table in the CSV shape of `table_e1_1.csv`.
pub fn parse_table(text: &str) -> Result<Vec<Row>, TableError> {
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| TableError {
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    let want: Vec<&str> = ["tag", "name", "in_std_iod"]
        .into_iter()
        .chain(Column::ALL.iter().map(|c| c.header()))
        .collect();
    if headers.iter().collect::<Vec<_>>() != want {
        return Err(TableError {
            line: 1,
            message: format!("header must be {}", want.join(",")),
        });
    }
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| TableError {
            line,
            message: e.to_string(),
        })?;
        let err = |message: String| TableError { line, message };
        let pattern =
            TagPattern::parse(&rec[0]).ok_or_else(|| err(format!("bad tag {:?}", &rec[0])))?;
        let mut options = [None; 11];
        for (j, cell) in rec.iter().skip(3).enumerate() {
            if !cell.is_empty() {
                options[j] =
                    Some(Code::parse(cell).ok_or_else(|| err(format!("bad action {cell:?}")))?);
            }
        }
        let basic = options[0].ok_or_else(|| err("no basic profile action".into()))?;
        rows.push(Row {
            pattern,
            name: rec[1].to_string(),
            in_std_iod: &rec[2] == "Y",
            basic,
            options,
        });
    }
    Ok(rows)
}

/// The compiled-in table, parsed once.
pub struct Table {
    /// Every row, in file order.
    pub rows: Vec<Row>,
    exact: HashMap<Tag, usize>,
    overlay: HashMap<u16, usize>,
    curve: Option<usize>,
    private: Option<usize>,
}

impl Table {
    /// The compiled-in table, parsed on first use.
    pub fn get() -> &'static Table {
        static TABLE: OnceLock<Table> = OnceLock::new();
        TABLE.get_or_init(|| {
            let rows = parse_table(TABLE_CSV).expect("the compiled-in Table E.1-1 parses");
            let mut t = Table {
                exact: HashMap::new(),
                overlay: HashMap::new(),
                curve: None,
                private: None,
                rows: Vec::new(),
            };
            for (i, r) in rows.iter().enumerate() {
                match r.pattern {
                    TagPattern::Exact(tag) => {
                        t.exact.insert(tag, i);
                    }
                    TagPattern::OverlayGroups(e) => {
                        t.overlay.insert(e, i);
                    }
                    TagPattern::CurveGroups => t.curve = Some(i),
                    TagPattern::Private => t.private = Some(i),
                }
            }
            t.rows = rows;
            t
        })
    }

    /// The row covering `tag`, if the table lists it.
    pub fn row(&self, tag: Tag) -> Option<&Row> {
        if tag.0 % 2 == 1 {
            return self.private.map(|i| &self.rows[i]);
        }
        if let Some(&i) = self.exact.get(&tag) {
            return Some(&self.rows[i]);
        }
        if (0x6000..=0x601E).contains(&tag.0) {
            if let Some(&i) = self.overlay.get(&tag.1) {
                return Some(&self.rows[i]);
            }
        }
        if (0x5000..=0x501E).contains(&tag.0) {
            return self.curve.map(|i| &self.rows[i]);
        }
        None
    }
}

/// What discus does to one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Not in the table (or K): keep; sequences are processed item by item.
    Keep,
    /// Remove the element.
    Remove,
    /// Keep the element with an empty value (an empty sequence for SQ).
    Empty,
    /// Replace with a dummy value of the VR (sequences: process their items).
    Dummy,
    /// Map every UID in the value (sequences: process their items, which maps the UIDs inside).
    MapUid,
    /// Shift dates by the patient's offset (DA, DT); times are kept (whole-day shift).
    ShiftDate,
    /// Keep the text with the dataset's identifying words removed.
    CleanText,
}

/// The action discus takes for `row` under `options`, given the element's VR.
///
/// Precedence: the first option column in force (see [`Options::columns`]) that has a cell for the
/// row wins over the basic profile. Compound codes resolve to the choice that keeps the IOD
/// conformant whatever the attribute's type (discus does not track IOD types): X/Z -> Z, X/D and Z/D
/// and X/Z/D -> D (for sequences X/Z/D -> Z, an empty sequence), X/Z/U* -> U (the sequence is kept and
/// the UIDs of the references inside are mapped, so references stay intact).
pub fn resolve(row: &Row, options: &Options, vr: VR) -> Action {
    let mut code = row.basic;
    for col in options.columns() {
        if let Some(c) = row.code(col) {
            code = c;
            break;
        }
    }
    let is_sq = vr == VR::SQ;
    match code {
        Code::K => Action::Keep,
        Code::X => Action::Remove,
        Code::Z | Code::XZ => Action::Empty,
        Code::XZD if is_sq => Action::Empty,
        Code::D | Code::XD | Code::ZD | Code::XZD => Action::Dummy,
        Code::U | Code::XZUStar => Action::MapUid,
        Code::C => {
            if options.retain_longitudinal_modified_dates
                && row.code(Column::RetainLongModifiedDates) == Some(Code::C)
            {
                match vr {
                    VR::DA | VR::DT => Action::ShiftDate,
                    VR::TM => Action::Keep,
                    // a C in the dates column on another VR: clean it as text
                    _ => Action::CleanText,
                }
            } else {
                Action::CleanText
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_well_formed() {
        let t = Table::get();
        assert_eq!(t.rows.len(), 621);
        // spot checks against the standard's table
        let pn = t.row(Tag(0x0010, 0x0010)).unwrap();
        assert_eq!((pn.name.as_str(), pn.basic), ("Patient's Name", Code::Z));
        let study_uid = t.row(Tag(0x0020, 0x000D)).unwrap();
        assert_eq!(study_uid.basic, Code::U);
        assert_eq!(study_uid.code(Column::RetainUids), Some(Code::K));
        let study_date = t.row(Tag(0x0008, 0x0020)).unwrap();
        assert_eq!(
            study_date.code(Column::RetainLongModifiedDates),
            Some(Code::C)
        );
        assert_eq!(t.row(Tag(0x0008, 0x1140)).unwrap().basic, Code::XZUStar);
        assert_eq!(t.row(Tag(0x6002, 0x3000)).unwrap().name, "Overlay Data");
        assert_eq!(t.row(Tag(0x5004, 0x1234)).unwrap().name, "Curve Data");
        assert_eq!(
            t.row(Tag(0x0029, 0x1010)).unwrap().name,
            "Private Attributes"
        );
        assert!(
            t.row(Tag(0x0028, 0x0010)).is_none(),
            "Rows is not in the table"
        );
    }

    #[test]
    fn options_override_basic_and_compounds_resolve() {
        let t = Table::get();
        let sex = t.row(Tag(0x0010, 0x0040)).unwrap();
        assert_eq!(resolve(sex, &Options::default(), VR::CS), Action::Empty);
        let o = Options {
            retain_patient_characteristics: true,
            ..Options::default()
        };
        assert_eq!(resolve(sex, &o, VR::CS), Action::Keep);
        let date = t.row(Tag(0x0008, 0x0020)).unwrap();
        let dates = Options {
            retain_longitudinal_modified_dates: true,
            ..Options::default()
        };
        assert_eq!(resolve(date, &dates, VR::DA), Action::ShiftDate);
        assert_eq!(
            resolve(t.row(Tag(0x0008, 0x0030)).unwrap(), &dates, VR::TM),
            Action::Keep
        );
        assert_eq!(
            resolve(
                t.row(Tag(0x0010, 0x0020)).unwrap(),
                &Options::default(),
                VR::LO
            ),
            Action::Dummy
        );
        assert_eq!(
            resolve(
                t.row(Tag(0x0008, 0x1140)).unwrap(),
                &Options::default(),
                VR::SQ
            ),
            Action::MapUid
        );
        assert_eq!(
            resolve(
                t.row(Tag(0x0008, 0x0082)).unwrap(),
                &Options::default(),
                VR::SQ
            ),
            Action::Empty
        );
    }

    #[test]
    fn method_codes_round_trip() {
        let o = Options {
            retain_uids: true,
            clean_descriptors: true,
            ..Options::default()
        };
        let codes = o.method_codes();
        assert_eq!(codes.len(), 3);
        assert_eq!(Options::from_method_codes(codes.iter().map(|c| c.0)), o);
    }
}
