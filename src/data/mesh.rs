//! Triangle meshes: reading OFF, Wavefront OBJ and PLY files, and sampling
//! point clouds uniformly on their surface.
//!
//! # Formats
//!
//! The format follows the file's extension (case-insensitive):
//!
//! * `.off` — Object File Format. The header keyword is `OFF` with optional
//!   prefixes `ST`, `C`, `N` (`COFF`, `NOFF`, `STCNOFF`, …); texture
//!   coordinates, colours and normals after a vertex's `x y z`, and colours
//!   after a face's indices, are ignored. The counts `V F [E]` may follow the
//!   keyword on the same line. `#` starts a comment. Each vertex and each
//!   face is one line. 4-D (`4OFF`, `nOFF`) and binary OFF are not supported.
//! * `.obj` — Wavefront OBJ. `v x y z [w]` records give vertices (the rest of
//!   the line, a weight or colours, is ignored), `f` records give faces whose
//!   corners are `a`, `a/b`, `a/b/c` or `a//c`, of which only the vertex index
//!   `a` is used; it counts from 1, and a negative `a` counts back from the
//!   last vertex defined so far (`-1` is the latest). Lines ending in `\`
//!   continue on the next line. All other records (`vn`, `vt`, `g`, `usemtl`,
//!   `l`, …) are ignored.
//! * `.ply` — Stanford PLY in the formats `ascii 1.0`,
//!   `binary_little_endian 1.0` and `binary_big_endian 1.0`. The element
//!   `vertex` must have the scalar properties `x`, `y`, `z`, of any scalar
//!   type (`char`/`int8`, `uchar`/`uint8`, `short`/`int16`,
//!   `ushort`/`uint16`, `int`/`int32`, `uint`/`uint32`, `float`/`float32`,
//!   `double`/`float64`), among any others; the element `face` gives polygons
//!   in its list property `vertex_indices` (or `vertex_index`), with any
//!   integer count and index types. Other properties and other elements
//!   (edges, materials, …), list properties included, are read past.
//!
//! Polygons with more than three corners are split into a fan of triangles
//! around their first corner: `[a, b, c, d]` becomes `[a, b, c]`, `[a, c, d]`.
//! A face with fewer than three corners, an index out of range, a number that
//! does not parse, a non-finite coordinate, a file that ends before the counts
//! its header declares, and a mesh without any triangle are errors. Errors
//! name the file and the place of the fault: `file.off:12` (the line) for text
//! formats and ASCII PLY, `file.ply: binary face 17 at byte 5120` (the
//! element, its index and the byte offset in the file) for binary PLY.
//!
//! # Sampling
//!
//! [`sample_surface`] draws points uniformly with respect to surface area: a
//! triangle is chosen with probability proportional to its area (a cumulative
//! area table searched by bisection), then a point uniformly inside it from
//! two uniform numbers `r1`, `r2` as
//! `(1 − √r1)·a + √r1·(1 − r2)·b + √r1·r2·c`. The random stream is
//! `ChaCha8Rng::seed_from_u64(seed)`, consumed in a fixed order (for each
//! point: triangle, `r1`, `r2`) on one thread, so the result depends only on
//! the mesh, `n` and `seed`, on any machine.

use std::path::Path;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// A triangle mesh: vertex coordinates and triangles given as three indices
/// (from 0) into `vertices`. Polygons of the source file are fan-triangulated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mesh {
    /// Vertex positions `[x, y, z]`.
    pub vertices: Vec<[f64; 3]>,
    /// Triangles as indices into `vertices`.
    pub triangles: Vec<[u32; 3]>,
}

/// Reads a mesh from an OFF (`.off`), Wavefront OBJ (`.obj`) or PLY (`.ply`)
/// file, chosen by the extension (case-insensitive); see the module
/// documentation for what each reader accepts.
///
/// Errors name the file and the line (text) or the element and byte offset
/// (binary PLY) of the fault; a mesh without triangles is an error.
pub fn read_mesh(path: &Path) -> Result<Mesh> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !matches!(ext.as_str(), "off" | "obj" | "ply") {
        return Err(Error::invalid(
            path.display().to_string(),
            "unknown mesh format: expected a .off, .obj or .ply file",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "reading", e))?;
    let mesh = match ext.as_str() {
        "off" => parse_off(path, &String::from_utf8_lossy(&bytes))?,
        "obj" => parse_obj(path, &String::from_utf8_lossy(&bytes))?,
        _ => parse_ply(path, &bytes)?,
    };
    if mesh.triangles.is_empty() {
        return Err(Error::invalid(
            path.display().to_string(),
            format!(
                "empty mesh: {} vertices but no faces (a point cloud?)",
                mesh.vertices.len()
            ),
        ));
    }
    Ok(mesh)
}

/// Samples `n` points (an `n × 3` matrix) uniformly with respect to area on
/// the surface of `mesh`, deterministically for given `(mesh, n, seed)`.
///
/// Triangles are chosen with probability proportional to their area
/// (zero-area triangles are never chosen), then a point uniformly inside the
/// triangle. An index out of range, a non-finite area or a total area of
/// zero is an error.
pub fn sample_surface(mesh: &Mesh, n: usize, seed: u64) -> Result<Array2<f64>> {
    let what = || {
        format!(
            "mesh ({} vertices, {} triangles)",
            mesh.vertices.len(),
            mesh.triangles.len()
        )
    };
    let nv = mesh.vertices.len();
    let mut cumulative = Vec::with_capacity(mesh.triangles.len());
    let mut total = 0.0;
    for (t, tri) in mesh.triangles.iter().enumerate() {
        if let Some(&i) = tri.iter().find(|&&i| i as usize >= nv) {
            return Err(Error::invalid(
                what(),
                format!("triangle {t} refers to vertex {i}, but there are {nv} vertices"),
            ));
        }
        let area = triangle_area(mesh, tri);
        if !area.is_finite() {
            return Err(Error::invalid(
                what(),
                format!("triangle {t} has a non-finite area"),
            ));
        }
        total += area;
        cumulative.push(total);
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(Error::invalid(
            what(),
            format!("cannot sample the surface: its total area is {total}"),
        ));
    }
    // The last triangle of positive area: a draw that rounds up to `total`
    // lands there, never on a trailing zero-area triangle.
    let last = cumulative.partition_point(|&c| c < total);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut points = Array2::zeros((n, 3));
    for mut row in points.rows_mut() {
        let u = rng.random::<f64>() * total;
        // The first triangle whose cumulative area exceeds u: triangle k is
        // hit with probability (cumulative[k] - cumulative[k - 1]) / total.
        let k = cumulative.partition_point(|&c| c <= u).min(last);
        let r1: f64 = rng.random();
        let r2: f64 = rng.random();
        let s = r1.sqrt();
        let weights = [1.0 - s, s * (1.0 - r2), s * r2];
        let corners = mesh.triangles[k].map(|i| mesh.vertices[i as usize]);
        for (d, x) in row.iter_mut().enumerate() {
            let [a, b, c] = corners.map(|v| v[d]);
            let value = weights[0] * a + weights[1] * b + weights[2] * c;
            // The exact point lies in the triangle: clamping to its bounding
            // box removes rounding (a face of the unit cube at x = 1 gives
            // exactly 1, not 1 + 2⁻⁵²).
            *x = value.clamp(a.min(b).min(c), a.max(b).max(c));
        }
    }
    Ok(points)
}

/// The area of a triangle (half the norm of the cross product of two edges).
fn triangle_area(mesh: &Mesh, tri: &[u32; 3]) -> f64 {
    let [a, b, c] = tri.map(|i| mesh.vertices[i as usize]);
    let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    let cross = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    0.5 * (cross[0] * cross[0] + cross[1] * cross[1] + cross[2] * cross[2]).sqrt()
}

/// `file:line`, the place of a fault in a text file.
fn at(path: &Path, line: usize) -> String {
    format!("{}:{}", path.display(), line)
}

/// Parses a coordinate: a finite floating-point number.
fn parse_coord(token: &str) -> std::result::Result<f64, String> {
    match token.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(format!("expected a finite coordinate, found '{token}'")),
        Err(_) => Err(format!("expected a number, found '{token}'")),
    }
}

/// Converts a vertex index to `u32`, checking it against the vertex count.
fn check_index(index: u64, nv: usize) -> std::result::Result<u32, String> {
    if index >= nv as u64 {
        return Err(format!(
            "vertex index {index} is out of range (there are {nv} vertices, indexed from 0)"
        ));
    }
    Ok(index as u32)
}

/// Appends the fan triangulation of a polygon (at least 3 corners).
fn push_fan(polygon: &[u32], triangles: &mut Vec<[u32; 3]>) {
    for j in 1..polygon.len() - 1 {
        triangles.push([polygon[0], polygon[j], polygon[j + 1]]);
    }
}

/// The vertex count as a `u32`-indexable size, or an error.
fn check_vertex_count(what: impl FnOnce() -> String, nv: usize) -> Result<()> {
    if nv > u32::MAX as usize {
        return Err(Error::invalid(
            what(),
            format!("{nv} vertices: more than 32-bit indices can address"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// OFF

fn parse_off(path: &Path, text: &str) -> Result<Mesh> {
    let total_lines = text.lines().count().max(1);
    // Non-empty lines, comments removed, with their 1-based line numbers.
    let mut lines = text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.split('#').next().unwrap_or("").trim();
        (!line.is_empty()).then_some((i + 1, line))
    });
    let end = |message: String| Error::invalid(at(path, total_lines), message);

    let (header_line, header) = lines
        .next()
        .ok_or_else(|| end("expected the OFF header, found an empty file".into()))?;
    let mut tokens = header.split_whitespace();
    let keyword = tokens.next().unwrap_or("");
    let Some(prefix) = keyword.strip_suffix("OFF") else {
        return Err(Error::invalid(
            at(path, header_line),
            format!("expected the keyword OFF (or COFF, NOFF, STOFF, …), found '{keyword}'"),
        ));
    };
    let mut rest = prefix;
    for part in ["ST", "C", "N"] {
        rest = rest.strip_prefix(part).unwrap_or(rest);
    }
    if !rest.is_empty() {
        let why = if rest.contains('4') || rest.contains('n') {
            "only 3-D OFF is supported"
        } else {
            "unknown prefix"
        };
        return Err(Error::invalid(
            at(path, header_line),
            format!("unsupported header keyword '{keyword}': {why}"),
        ));
    }
    let mut counts: Vec<&str> = tokens.collect();
    if counts.first() == Some(&"BINARY") {
        return Err(Error::invalid(
            at(path, header_line),
            "binary OFF is not supported",
        ));
    }
    let mut counts_line = header_line;
    if counts.is_empty() {
        let (ln, line) = lines.next().ok_or_else(|| {
            end("expected the counts 'vertices faces edges', found the end of the file".into())
        })?;
        counts = line.split_whitespace().collect();
        counts_line = ln;
    }
    if !(2..=3).contains(&counts.len()) {
        return Err(Error::invalid(
            at(path, counts_line),
            format!(
                "expected the counts 'vertices faces edges', found '{}'",
                counts.join(" ")
            ),
        ));
    }
    let mut parsed = [0usize; 2];
    for (slot, token) in parsed.iter_mut().zip(&counts) {
        *slot = token.parse().map_err(|_| {
            Error::invalid(
                at(path, counts_line),
                format!(
                    "expected the counts 'vertices faces edges' as non-negative integers, found '{}'",
                    counts.join(" ")
                ),
            )
        })?;
    }
    let [nv, nf] = parsed;
    check_vertex_count(|| at(path, counts_line), nv)?;

    let mut vertices = Vec::with_capacity(nv.min(1 << 24));
    for v in 0..nv {
        let (ln, line) = lines.next().ok_or_else(|| {
            end(format!(
                "the header (line {counts_line}) declares {nv} vertices, but the file ends after {v}"
            ))
        })?;
        let mut xyz = [0.0; 3];
        let mut tokens = line.split_whitespace();
        for (d, x) in xyz.iter_mut().enumerate() {
            let token = tokens.next().ok_or_else(|| {
                Error::invalid(
                    at(path, ln),
                    format!("vertex {v}: expected 3 coordinates x y z, found {d} ('{line}')"),
                )
            })?;
            *x = parse_coord(token)
                .map_err(|m| Error::invalid(at(path, ln), format!("vertex {v}: {m}")))?;
        }
        vertices.push(xyz);
    }

    let mut triangles = Vec::with_capacity(nf.min(1 << 24));
    let mut polygon = Vec::new();
    for f in 0..nf {
        let (ln, line) = lines.next().ok_or_else(|| {
            end(format!(
                "the header (line {counts_line}) declares {nf} faces, but the file ends after {f}"
            ))
        })?;
        let fault = |m: String| Error::invalid(at(path, ln), format!("face {f}: {m}"));
        let mut tokens = line.split_whitespace();
        let first = tokens.next().unwrap_or("");
        let k: usize = first.parse().map_err(|_| {
            fault(format!(
                "expected the number of corners (an integer), found '{first}'"
            ))
        })?;
        if k < 3 {
            return Err(fault(format!("a face needs at least 3 corners, found {k}")));
        }
        polygon.clear();
        for c in 0..k {
            let token = tokens
                .next()
                .ok_or_else(|| fault(format!("expected {k} vertex indices, found {c}")))?;
            let index: u64 = token.parse().map_err(|_| {
                fault(format!(
                    "expected a vertex index (a non-negative integer), found '{token}'"
                ))
            })?;
            polygon.push(check_index(index, nv).map_err(fault)?);
        }
        // Anything after the indices is a colour: ignored.
        push_fan(&polygon, &mut triangles);
    }
    if let Some((ln, line)) = lines.next() {
        return Err(Error::invalid(
            at(path, ln),
            format!(
                "unexpected data after the {nv} vertices and {nf} faces declared on line {counts_line}: '{line}'"
            ),
        ));
    }
    Ok(Mesh {
        vertices,
        triangles,
    })
}

// ---------------------------------------------------------------------------
// OBJ

fn parse_obj(path: &Path, text: &str) -> Result<Mesh> {
    let mut vertices: Vec<[f64; 3]> = Vec::new();
    let mut triangles = Vec::new();
    // Positive indices beyond the vertices read so far (forward references),
    // checked once all vertices are known: (line, face corner index from 0).
    let mut forward: Vec<(usize, u64)> = Vec::new();
    let mut polygon = Vec::new();
    let mut record = String::new();
    let mut record_line = 0;
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let line = raw.split('#').next().unwrap_or("");
        if record.is_empty() {
            record_line = i + 1;
        }
        // A trailing backslash continues the record on the next line.
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            if lines.peek().is_some() {
                record.push_str(head);
                record.push(' ');
                continue;
            }
        }
        record.push_str(line);
        let ln = record_line;
        let mut tokens = record.split_whitespace();
        match tokens.next() {
            Some("v") => {
                let mut xyz = [0.0; 3];
                for (d, x) in xyz.iter_mut().enumerate() {
                    let token = tokens.next().ok_or_else(|| {
                        Error::invalid(
                            at(path, ln),
                            format!(
                                "vertex {}: expected 'v x y z', found {d} coordinates",
                                vertices.len() + 1
                            ),
                        )
                    })?;
                    *x = parse_coord(token).map_err(|m| {
                        Error::invalid(at(path, ln), format!("vertex {}: {m}", vertices.len() + 1))
                    })?;
                }
                vertices.push(xyz);
            }
            Some("f") => {
                polygon.clear();
                let nv = vertices.len();
                for token in tokens {
                    let first = token.split('/').next().unwrap_or("");
                    let fault = |m: String| {
                        Error::invalid(at(path, ln), format!("face corner '{token}': {m}"))
                    };
                    let index: i64 = first.parse().map_err(|_| {
                        fault("expected a vertex index (a non-zero integer)".into())
                    })?;
                    let resolved = if index > 0 {
                        let zero_based = index as u64 - 1;
                        if zero_based >= nv as u64 {
                            forward.push((ln, zero_based));
                        }
                        zero_based
                    } else if index < 0 && index.unsigned_abs() <= nv as u64 {
                        nv as u64 - index.unsigned_abs()
                    } else if index == 0 {
                        return Err(fault("vertex indices count from 1; 0 is invalid".into()));
                    } else {
                        return Err(fault(format!(
                            "relative index {index} reaches before the first vertex ({nv} defined so far)"
                        )));
                    };
                    if resolved > u32::MAX as u64 {
                        return Err(fault("index beyond 32-bit range".into()));
                    }
                    polygon.push(resolved as u32);
                }
                if polygon.len() < 3 {
                    return Err(Error::invalid(
                        at(path, ln),
                        format!(
                            "a face needs at least 3 corners, found {} ('{}')",
                            polygon.len(),
                            record.trim()
                        ),
                    ));
                }
                push_fan(&polygon, &mut triangles);
            }
            _ => {}
        }
        record.clear();
    }
    let nv = vertices.len();
    check_vertex_count(|| path.display().to_string(), nv)?;
    if let Some(&(ln, index)) = forward.iter().find(|&&(_, index)| index >= nv as u64) {
        return Err(Error::invalid(
            at(path, ln),
            format!(
                "vertex index {} is out of range (the file defines {nv} vertices, indexed from 1)",
                index + 1
            ),
        ));
    }
    Ok(Mesh {
        vertices,
        triangles,
    })
}

// ---------------------------------------------------------------------------
// PLY

/// A PLY scalar type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Scalar {
    fn parse(name: &str) -> Option<Scalar> {
        Some(match name {
            "char" | "int8" => Scalar::I8,
            "uchar" | "uint8" => Scalar::U8,
            "short" | "int16" => Scalar::I16,
            "ushort" | "uint16" => Scalar::U16,
            "int" | "int32" => Scalar::I32,
            "uint" | "uint32" => Scalar::U32,
            "float" | "float32" => Scalar::F32,
            "double" | "float64" => Scalar::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Scalar::I8 | Scalar::U8 => 1,
            Scalar::I16 | Scalar::U16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::F64 => 8,
        }
    }

    fn is_integer(self) -> bool {
        !matches!(self, Scalar::F32 | Scalar::F64)
    }

    fn name(self) -> &'static str {
        match self {
            Scalar::I8 => "char",
            Scalar::U8 => "uchar",
            Scalar::I16 => "short",
            Scalar::U16 => "ushort",
            Scalar::I32 => "int",
            Scalar::U32 => "uint",
            Scalar::F32 => "float",
            Scalar::F64 => "double",
        }
    }

    /// Decodes `bytes` (exactly `size()` of them). Every type converts to
    /// `f64` exactly.
    fn decode(self, bytes: &[u8], big_endian: bool) -> f64 {
        macro_rules! num {
            ($t:ty) => {{
                let array = bytes.try_into().expect("scalar size");
                (if big_endian {
                    <$t>::from_be_bytes(array)
                } else {
                    <$t>::from_le_bytes(array)
                }) as f64
            }};
        }
        match self {
            Scalar::I8 => num!(i8),
            Scalar::U8 => num!(u8),
            Scalar::I16 => num!(i16),
            Scalar::U16 => num!(u16),
            Scalar::I32 => num!(i32),
            Scalar::U32 => num!(u32),
            Scalar::F32 => num!(f32),
            Scalar::F64 => num!(f64),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Scalar(Scalar),
    List { count: Scalar, item: Scalar },
}

/// What a property is used for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Coord(usize),
    Indices,
    Skip,
}

#[derive(Debug)]
struct Property {
    name: String,
    kind: Kind,
    role: Role,
}

#[derive(Debug)]
struct Element {
    name: String,
    count: usize,
    line: usize,
    properties: Vec<Property>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Ascii,
    Binary { big_endian: bool },
}

fn parse_ply(path: &Path, bytes: &[u8]) -> Result<Mesh> {
    let (format, mut elements, header_lines, body_start) = parse_ply_header(path, bytes)?;

    // Roles: x, y, z of the vertex element, the index list of the face element.
    let vertex = elements.iter().position(|e| e.name == "vertex");
    let Some(vertex) = vertex else {
        return Err(Error::invalid(
            path.display().to_string(),
            "the PLY header declares no 'vertex' element",
        ));
    };
    let nv = elements[vertex].count;
    check_vertex_count(|| at(path, elements[vertex].line), nv)?;
    {
        let element = &mut elements[vertex];
        for (d, axis) in ["x", "y", "z"].into_iter().enumerate() {
            let found = element.properties.iter_mut().find(|p| p.name == axis);
            match found {
                Some(p) if matches!(p.kind, Kind::Scalar(_)) => p.role = Role::Coord(d),
                Some(_) => {
                    return Err(Error::invalid(
                        at(path, element.line),
                        format!("element vertex: property '{axis}' is a list, expected a scalar"),
                    ))
                }
                None => {
                    let names: Vec<&str> =
                        element.properties.iter().map(|p| p.name.as_str()).collect();
                    return Err(Error::invalid(
                        at(path, element.line),
                        format!(
                            "element vertex has no property '{axis}' (its properties: {})",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
    }
    if let Some(element) = elements.iter_mut().find(|e| e.name == "face") {
        let list = element.properties.iter_mut().find(|p| {
            matches!(p.name.as_str(), "vertex_indices" | "vertex_index")
                && matches!(p.kind, Kind::List { .. })
        });
        match list {
            Some(p) => p.role = Role::Indices,
            None => {
                return Err(Error::invalid(
                    at(path, element.line),
                    "element face has no list property 'vertex_indices' (or 'vertex_index')",
                ))
            }
        }
    }

    let mut mesh = Mesh::default();
    let body = &bytes[body_start..];
    match format {
        Format::Ascii => read_ply_ascii(path, body, header_lines, &elements, nv, &mut mesh)?,
        Format::Binary { big_endian } => read_ply_binary(
            path, bytes, body_start, big_endian, &elements, nv, &mut mesh,
        )?,
    }
    Ok(mesh)
}

/// Parses the header: format, elements, the number of header lines and the
/// byte offset where the body starts.
fn parse_ply_header(path: &Path, bytes: &[u8]) -> Result<(Format, Vec<Element>, usize, usize)> {
    let mut format = None;
    let mut elements: Vec<Element> = Vec::new();
    let mut pos = 0;
    let mut ln = 0;
    loop {
        if pos >= bytes.len() {
            return Err(Error::invalid(
                at(path, ln.max(1)),
                "the PLY header ends without 'end_header'",
            ));
        }
        let (raw, next) = match bytes[pos..].iter().position(|&b| b == b'\n') {
            Some(e) => (&bytes[pos..pos + e], pos + e + 1),
            None => (&bytes[pos..], bytes.len()),
        };
        ln += 1;
        pos = next;
        let line = std::str::from_utf8(raw)
            .map_err(|_| Error::invalid(at(path, ln), "the PLY header is not ASCII text"))?
            .trim();
        let fault = |m: String| Error::invalid(at(path, ln), m);
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if ln == 1 {
            if line != "ply" {
                return Err(fault(format!(
                    "expected the magic line 'ply', found '{}'",
                    line.chars().take(40).collect::<String>()
                )));
            }
            continue;
        }
        match tokens.first().copied() {
            None | Some("comment") | Some("obj_info") => {}
            Some("format") => {
                let (kind, version) = match tokens[..] {
                    [_, kind, version] => (kind, version),
                    _ => {
                        return Err(fault(format!(
                            "expected 'format <ascii|binary_little_endian|binary_big_endian> 1.0', found '{line}'"
                        )))
                    }
                };
                format = Some(match kind {
                    "ascii" => Format::Ascii,
                    "binary_little_endian" => Format::Binary { big_endian: false },
                    "binary_big_endian" => Format::Binary { big_endian: true },
                    _ => {
                        return Err(fault(format!(
                            "unknown PLY format '{kind}' (expected ascii, binary_little_endian or binary_big_endian)"
                        )))
                    }
                });
                if version.parse::<f64>() != Ok(1.0) {
                    return Err(fault(format!(
                        "unsupported PLY version '{version}' (expected 1.0)"
                    )));
                }
            }
            Some("element") => {
                let [_, name, count] = tokens[..] else {
                    return Err(fault(format!(
                        "expected 'element <name> <count>', found '{line}'"
                    )));
                };
                let count = count.parse().map_err(|_| {
                    fault(format!(
                        "element {name}: expected a non-negative integer count, found '{count}'"
                    ))
                })?;
                elements.push(Element {
                    name: name.to_string(),
                    count,
                    line: ln,
                    properties: Vec::new(),
                });
            }
            Some("property") => {
                let scalar = |name: &str| {
                    Scalar::parse(name).ok_or_else(|| {
                        fault(format!(
                            "unknown property type '{name}' (expected char, uchar, short, ushort, int, uint, float, double or int8 … float64)"
                        ))
                    })
                };
                let (kind, name) = match tokens[..] {
                    [_, "list", count, item, name] => {
                        let count = scalar(count)?;
                        if !count.is_integer() {
                            return Err(fault(format!(
                                "list property '{name}': the count type must be an integer type, found '{}'",
                                count.name()
                            )));
                        }
                        (
                            Kind::List {
                                count,
                                item: scalar(item)?,
                            },
                            name,
                        )
                    }
                    [_, ty, name] if ty != "list" => (Kind::Scalar(scalar(ty)?), name),
                    _ => {
                        return Err(fault(format!(
                            "expected 'property <type> <name>' or 'property list <count type> <item type> <name>', found '{line}'"
                        )))
                    }
                };
                let Some(element) = elements.last_mut() else {
                    return Err(fault(format!(
                        "property '{name}' before any 'element' line"
                    )));
                };
                if element.name == "face"
                    && matches!(name, "vertex_indices" | "vertex_index")
                    && matches!(kind, Kind::List { item, .. } if !item.is_integer())
                {
                    return Err(fault(format!(
                        "face property '{name}': the index type must be an integer type"
                    )));
                }
                element.properties.push(Property {
                    name: name.to_string(),
                    kind,
                    role: Role::Skip,
                });
            }
            Some("end_header") => break,
            Some(other) => {
                return Err(fault(format!(
                    "unknown PLY header keyword '{other}' (expected format, comment, obj_info, element, property or end_header)"
                )))
            }
        }
    }
    let format = format.ok_or_else(|| {
        Error::invalid(
            path.display().to_string(),
            "the PLY header has no 'format' line",
        )
    })?;
    Ok((format, elements, ln, pos))
}

/// Checks a face's index list entry and converts it.
fn ply_index(value: f64, nv: usize) -> std::result::Result<u32, String> {
    if value < 0.0 || value.fract() != 0.0 {
        return Err(format!("invalid vertex index {value}"));
    }
    check_index(value as u64, nv)
}

/// Checks a list count and converts it.
fn ply_count(value: f64, name: &str) -> std::result::Result<usize, String> {
    if value < 0.0 || value.fract() != 0.0 {
        return Err(format!("list '{name}': invalid length {value}"));
    }
    Ok(value as usize)
}

fn read_ply_ascii(
    path: &Path,
    body: &[u8],
    header_lines: usize,
    elements: &[Element],
    nv: usize,
    mesh: &mut Mesh,
) -> Result<()> {
    let text = String::from_utf8_lossy(body);
    let total_lines = header_lines + text.lines().count();
    let mut lines = text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.trim();
        (!line.is_empty()).then_some((header_lines + i + 1, line))
    });
    let mut polygon = Vec::new();
    for element in elements {
        if element.properties.is_empty() {
            continue;
        }
        let is_vertex = element.name == "vertex";
        for i in 0..element.count {
            let (ln, line) = lines.next().ok_or_else(|| {
                Error::invalid(
                    at(path, total_lines.max(1)),
                    format!(
                        "the header (line {}) declares {} '{}' elements, but the file ends after {i}",
                        element.line, element.count, element.name
                    ),
                )
            })?;
            let fault =
                |m: String| Error::invalid(at(path, ln), format!("{} {i}: {m}", element.name));
            let mut tokens = line.split_whitespace();
            let mut next = |what: &str| -> Result<f64> {
                let token = tokens
                    .next()
                    .ok_or_else(|| fault(format!("the line ends before {what}")))?;
                token
                    .parse::<f64>()
                    .map_err(|_| fault(format!("{what}: expected a number, found '{token}'")))
            };
            let mut xyz = [0.0; 3];
            for p in &element.properties {
                match p.kind {
                    Kind::Scalar(_) => {
                        let value = next(&format!("property '{}'", p.name))?;
                        if let Role::Coord(d) = p.role {
                            if !value.is_finite() {
                                return Err(fault(format!(
                                    "property '{}': non-finite coordinate {value}",
                                    p.name
                                )));
                            }
                            xyz[d] = value;
                        }
                    }
                    Kind::List { .. } => {
                        let len = next(&format!("the length of list '{}'", p.name))?;
                        let len = ply_count(len, &p.name).map_err(fault)?;
                        polygon.clear();
                        for j in 0..len {
                            let value = next(&format!("item {j} of list '{}'", p.name))?;
                            if p.role == Role::Indices {
                                polygon.push(ply_index(value, nv).map_err(fault)?);
                            }
                        }
                        if p.role == Role::Indices {
                            if len < 3 {
                                return Err(fault(format!(
                                    "a face needs at least 3 corners, found {len}"
                                )));
                            }
                            push_fan(&polygon, &mut mesh.triangles);
                        }
                    }
                }
            }
            if tokens.next().is_some() {
                return Err(fault(format!(
                    "more values than the {} properties declared in the header (line {}): '{line}'",
                    element.properties.len(),
                    element.line
                )));
            }
            if is_vertex {
                mesh.vertices.push(xyz);
            }
        }
    }
    if let Some((ln, line)) = lines.next() {
        return Err(Error::invalid(
            at(path, ln),
            format!("unexpected data after the elements declared in the header: '{line}'"),
        ));
    }
    Ok(())
}

fn read_ply_binary(
    path: &Path,
    bytes: &[u8],
    body_start: usize,
    big_endian: bool,
    elements: &[Element],
    nv: usize,
    mesh: &mut Mesh,
) -> Result<()> {
    let mut pos = body_start;
    let mut polygon = Vec::new();
    for element in elements {
        let is_vertex = element.name == "vertex";
        if is_vertex {
            mesh.vertices.reserve(element.count.min(1 << 24));
        }
        for i in 0..element.count {
            let fault = |offset: usize, m: String| {
                Error::invalid(
                    format!(
                        "{}: binary {} {i} at byte {offset}",
                        path.display(),
                        element.name
                    ),
                    m,
                )
            };
            // Reads one scalar at `pos`, advancing it.
            let read = |pos: &mut usize, ty: Scalar, what: &dyn Fn() -> String| {
                let size = ty.size();
                match bytes.get(*pos..*pos + size) {
                    Some(raw) => {
                        *pos += size;
                        Ok(ty.decode(raw, big_endian))
                    }
                    None => Err(fault(
                        *pos,
                        format!(
                            "truncated file: {} ({}, {size} bytes) runs past the end of the file ({} bytes)",
                            what(),
                            ty.name(),
                            bytes.len()
                        ),
                    )),
                }
            };
            let mut xyz = [0.0; 3];
            for p in &element.properties {
                match p.kind {
                    Kind::Scalar(ty) => {
                        let start = pos;
                        let value = read(&mut pos, ty, &|| format!("property '{}'", p.name))?;
                        if let Role::Coord(d) = p.role {
                            if !value.is_finite() {
                                return Err(fault(
                                    start,
                                    format!("property '{}': non-finite coordinate {value}", p.name),
                                ));
                            }
                            xyz[d] = value;
                        }
                    }
                    Kind::List { count, item } => {
                        let start = pos;
                        let len = read(&mut pos, count, &|| {
                            format!("the length of list '{}'", p.name)
                        })?;
                        let len = ply_count(len, &p.name).map_err(|m| fault(start, m))?;
                        if p.role != Role::Indices {
                            // Skip the items without decoding them.
                            let size = len.saturating_mul(item.size());
                            if bytes.len() - pos < size {
                                return Err(fault(
                                    pos,
                                    format!(
                                        "truncated file: list '{}' of {len} {} items runs past the end of the file ({} bytes)",
                                        p.name,
                                        item.name(),
                                        bytes.len()
                                    ),
                                ));
                            }
                            pos += size;
                            continue;
                        }
                        if len < 3 {
                            return Err(fault(
                                start,
                                format!("a face needs at least 3 corners, found {len}"),
                            ));
                        }
                        polygon.clear();
                        for j in 0..len {
                            let start = pos;
                            let value =
                                read(&mut pos, item, &|| format!("item {j} of list '{}'", p.name))?;
                            polygon.push(ply_index(value, nv).map_err(|m| fault(start, m))?);
                        }
                        push_fan(&polygon, &mut mesh.triangles);
                    }
                }
            }
            if is_vertex {
                mesh.vertices.push(xyz);
            }
        }
    }
    // Trailing bytes (a final newline, padding) are ignored.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The unit cube: the reference for every reader test.
    const CUBE_VERTICES: [[f64; 3]; 8] = [
        [0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [1.0, 1.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 0.0, 1.0],
        [1.0, 1.0, 1.0],
        [0.0, 1.0, 1.0],
    ];
    /// Its six quads (from 0), outward-oriented.
    const CUBE_QUADS: [[u32; 4]; 6] = [
        [0, 3, 2, 1],
        [4, 5, 6, 7],
        [0, 1, 5, 4],
        [2, 3, 7, 6],
        [0, 4, 7, 3],
        [1, 2, 6, 5],
    ];
    /// The quads' fan triangulation, written out by hand.
    const CUBE_TRIANGLES: [[u32; 3]; 12] = [
        [0, 3, 2],
        [0, 2, 1],
        [4, 5, 6],
        [4, 6, 7],
        [0, 1, 5],
        [0, 5, 4],
        [2, 3, 7],
        [2, 7, 6],
        [0, 4, 7],
        [0, 7, 3],
        [1, 2, 6],
        [1, 6, 5],
    ];

    fn cube() -> Mesh {
        Mesh {
            vertices: CUBE_VERTICES.to_vec(),
            triangles: CUBE_TRIANGLES.to_vec(),
        }
    }

    fn write(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// The error message of reading `contents` as the file `name`.
    fn read_error(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> (PathBuf, String) {
        let path = write(dir, name, contents);
        match read_mesh(&path) {
            Ok(mesh) => panic!("{name}: expected an error, got {mesh:?}"),
            Err(e) => (path, e.to_string()),
        }
    }

    /// Asserts that the message starts with `path:line` and contains `needle`.
    fn assert_at_line(message: &str, path: &Path, line: usize, needle: &str) {
        let place = format!("{}:{}: ", path.display(), line);
        assert!(
            message.starts_with(&place),
            "expected the error at {place}, got: {message}"
        );
        assert!(
            message.contains(needle),
            "expected '{needle}' in: {message}"
        );
    }

    fn cube_off() -> String {
        let mut s = String::from("# a unit cube\nOFF\n8 6 12\n");
        for v in CUBE_VERTICES {
            s += &format!("{} {} {}\n", v[0], v[1], v[2]);
        }
        for q in CUBE_QUADS {
            s += &format!("4 {} {} {} {}\n", q[0], q[1], q[2], q[3]);
        }
        s
    }

    #[test]
    fn off_variants_read_the_cube() {
        let dir = tempfile::tempdir().unwrap();
        let plain = write(&dir, "cube.off", cube_off().as_bytes());
        assert_eq!(read_mesh(&plain).unwrap(), cube());

        // COFF with colours on vertices and faces, counts on the keyword line,
        // comments, blank lines, CRLF line ends, upper-case extension.
        let mut s = String::from("COFF 8 6 0 # counts here\r\n\r\n");
        for v in CUBE_VERTICES {
            s += &format!(
                "  {:.1}\t{}  {} 0.5 0.25 1 1 # colour\r\n",
                v[0], v[1], v[2]
            );
        }
        s += "# faces follow\r\n";
        for q in CUBE_QUADS {
            s += &format!("4 {} {} {} {} 255 0 0\r\n", q[0], q[1], q[2], q[3]);
        }
        s += "\r\n# the end\r\n";
        let coff = write(&dir, "cube_colour.OFF", s.as_bytes());
        assert_eq!(read_mesh(&coff).unwrap(), cube());

        // NOFF: normals after the coordinates; a polygon split into triangles.
        let mut s = String::from("NOFF\n8 7 0\n");
        for v in CUBE_VERTICES {
            s += &format!("{:e} {:e} {:e} 0 0 1\n", v[0], v[1], v[2]);
        }
        s += "3 0 3 2\n3 0 2 1\n";
        for q in &CUBE_QUADS[1..] {
            s += &format!("4 {} {} {} {}\n", q[0], q[1], q[2], q[3]);
        }
        let noff = write(&dir, "cube_normals.off", s.as_bytes());
        assert_eq!(read_mesh(&noff).unwrap(), cube());

        // A pentagon fans into three triangles around its first corner.
        let pentagon = "OFF\n5 1 5\n0 0 0\n1 0 0\n2 1 0\n1 2 0\n0 1 0\n5 0 1 2 3 4\n";
        let p = write(&dir, "pentagon.off", pentagon.as_bytes());
        assert_eq!(
            read_mesh(&p).unwrap().triangles,
            vec![[0, 1, 2], [0, 2, 3], [0, 3, 4]]
        );
    }

    #[test]
    fn obj_reads_the_cube() {
        let dir = tempfile::tempdir().unwrap();
        let v = |i: usize| {
            let [x, y, z] = CUBE_VERTICES[i];
            format!("v {x} {y} {z}\n")
        };
        let mut s = String::from("# a unit cube\nmtllib cube.mtl\no cube\n");
        for i in 0..4 {
            s += &v(i);
        }
        // Relative indices count back from the 4 vertices defined so far:
        // -4 -1 -2 -3 is 1 4 3 2, the bottom face [0, 3, 2, 1].
        s += "vt 0 0\nvn 0 0 -1\ng bottom\nusemtl red\nf -4/1/1 -1/1/1 -2/1/1 -3/1/1\n";
        for i in 4..8 {
            s += &v(i);
        }
        s += "v 1.0 1.0 1.0 1.0\n"; // vertex 9 with a weight, unused
        s += "s off\nf 5//1 6//1 7//1 8//1\n"; // top
        s += "f 1/1 2/1 6/1 5/1 # front\n";
        s += "f 3 4 \\\n 8 7\n"; // back, continued on the next line
        s += "f -9 -5 -2 -6\n"; // left: 1 5 8 4 with 9 vertices
        s += "l 1 2\np 3\nf 2 3 7 6\n"; // right
        let path = write(&dir, "cube.obj", s.as_bytes());
        let mut expected = cube();
        expected.vertices.push([1.0, 1.0, 1.0]);
        assert_eq!(read_mesh(&path).unwrap(), expected);
    }

    /// A PLY value written by the tests' own encoder.
    enum Val {
        S(&'static str, f64),
        L(&'static str, &'static str, Vec<f64>),
    }

    /// Encodes one scalar of the named PLY type.
    fn encode(ty: &str, x: f64, big: bool, out: &mut Vec<u8>) {
        macro_rules! put {
            ($t:ty) => {{
                let v = x as $t;
                out.extend_from_slice(&if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                })
            }};
        }
        match ty {
            "char" | "int8" => put!(i8),
            "uchar" | "uint8" => put!(u8),
            "short" | "int16" => put!(i16),
            "ushort" | "uint16" => put!(u16),
            "int" | "int32" => put!(i32),
            "uint" | "uint32" => put!(u32),
            "float" | "float32" => put!(f32),
            "double" | "float64" => put!(f64),
            _ => panic!("test encoder: type {ty}"),
        }
    }

    /// The body of a PLY file: ASCII (`None`) or binary (`Some(big_endian)`).
    fn ply_body(rows: &[Vec<Val>], binary: Option<bool>) -> Vec<u8> {
        let mut out = Vec::new();
        for row in rows {
            let mut text = Vec::new();
            for v in row {
                match (v, binary) {
                    (Val::S(_, x), None) => text.push(x.to_string()),
                    (Val::L(_, _, xs), None) => {
                        text.push(xs.len().to_string());
                        text.extend(xs.iter().map(|x| x.to_string()));
                    }
                    (Val::S(ty, x), Some(big)) => encode(ty, *x, big, &mut out),
                    (Val::L(ct, it, xs), Some(big)) => {
                        encode(ct, xs.len() as f64, big, &mut out);
                        for &x in xs {
                            encode(it, x, big, &mut out);
                        }
                    }
                }
            }
            if binary.is_none() {
                out.extend_from_slice(text.join(" ").as_bytes());
                out.push(b'\n');
            }
        }
        out
    }

    /// The cube as PLY, with extra properties (a list among them) on the
    /// vertices and faces, and extra elements with list properties.
    fn cube_ply(format: &str) -> Vec<u8> {
        let header = format!(
            "ply\nformat {format} 1.0\ncomment made by hand\nobj_info for tests\n\
             element vertex 8\nproperty float nx\nproperty double x\nproperty uchar red\n\
             property float32 y\nproperty list uint8 int16 tags\nproperty int16 z\n\
             element edge 2\nproperty int vertex1\nproperty list int uint16 chain\n\
             property int vertex2\n\
             element face 6\nproperty uchar flag\nproperty list uchar int vertex_indices\n\
             property list ushort float texcoord\n\
             element material 1\nproperty double shininess\nend_header\n"
        );
        let mut rows = Vec::new();
        for (i, [x, y, z]) in CUBE_VERTICES.into_iter().enumerate() {
            rows.push(vec![
                Val::S("float", -0.5),
                Val::S("double", x),
                Val::S("uchar", 200.0),
                Val::S("float32", y),
                Val::L("uint8", "int16", vec![-1.0; i % 3]),
                Val::S("int16", z),
            ]);
        }
        rows.push(vec![
            Val::S("int", 0.0),
            Val::L("int", "uint16", vec![1.0, 2.0, 3.0]),
            Val::S("int", 1.0),
        ]);
        rows.push(vec![
            Val::S("int", 2.0),
            Val::L("int", "uint16", vec![]),
            Val::S("int", 3.0),
        ]);
        for q in CUBE_QUADS {
            rows.push(vec![
                Val::S("uchar", 7.0),
                Val::L("uchar", "int", q.iter().map(|&i| i as f64).collect()),
                Val::L("ushort", "float", vec![0.25; 8]),
            ]);
        }
        rows.push(vec![Val::S("double", 0.75)]);
        let binary = match format {
            "ascii" => None,
            "binary_little_endian" => Some(false),
            _ => Some(true),
        };
        let mut out = header.into_bytes();
        out.extend(ply_body(&rows, binary));
        out
    }

    #[test]
    fn ply_ascii_and_binary_read_the_cube() {
        let dir = tempfile::tempdir().unwrap();
        for format in ["ascii", "binary_little_endian", "binary_big_endian"] {
            let path = write(&dir, &format!("cube_{format}.ply"), &cube_ply(format));
            let mesh = read_mesh(&path).unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_eq!(mesh, cube(), "{format}");
        }
        // A CRLF header, `vertex_index`, the int32/uint8 aliases and no extras.
        let mut s = String::from(
            "ply\r\nformat ascii 1.0\r\nelement vertex 8\r\nproperty int32 x\r\n\
             property int32 y\r\nproperty int32 z\r\nelement face 6\r\n\
             property list uint8 uint32 vertex_index\r\nend_header\r\n",
        );
        for [x, y, z] in CUBE_VERTICES {
            s += &format!("{x} {y} {z}\r\n");
        }
        for q in CUBE_QUADS {
            s += &format!("4 {} {} {} {}\r\n", q[0], q[1], q[2], q[3]);
        }
        let path = write(&dir, "cube_crlf.PLY", s.as_bytes());
        assert_eq!(read_mesh(&path).unwrap(), cube());
    }

    /// A binary tetrahedron: 4 vertices of 3 floats, 4 faces `list uchar int`.
    fn tetra_binary(big: bool, faces: &[Vec<f64>]) -> (Vec<u8>, usize) {
        let format = if big { "big" } else { "little" };
        let header = format!(
            "ply\nformat binary_{format}_endian 1.0\nelement vertex 4\nproperty float x\n\
             property float y\nproperty float z\nelement face {}\n\
             property list uchar int vertex_indices\nend_header\n",
            faces.len()
        );
        let mut rows: Vec<Vec<Val>> = [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(|x| Val::S("float", x)).collect())
        .collect();
        for f in faces {
            rows.push(vec![Val::L("uchar", "int", f.clone())]);
        }
        let mut out = header.clone().into_bytes();
        out.extend(ply_body(&rows, Some(big)));
        (out, header.len())
    }

    #[test]
    fn binary_ply_errors_name_element_and_byte() {
        let dir = tempfile::tempdir().unwrap();
        let tri = |a: f64, b: f64, c: f64| vec![a, b, c];
        let faces = [
            tri(0., 1., 2.),
            tri(0., 1., 3.),
            tri(0., 2., 7.),
            tri(1., 2., 3.),
        ];
        let (bytes, header) = tetra_binary(false, &faces);
        let (path, msg) = read_error(&dir, "bad_index.ply", &bytes);
        // Face 2, its third index: after 4 vertices of 12 bytes, 2 faces of
        // 13 bytes, the count byte and two 4-byte indices.
        let byte = header + 4 * 12 + 2 * 13 + 1 + 2 * 4;
        let place = format!("{}: binary face 2 at byte {byte}: ", path.display());
        assert!(msg.starts_with(&place), "expected {place}, got {msg}");
        assert!(msg.contains("vertex index 7 is out of range"), "{msg}");

        // Truncated in the middle of vertex 3's y (big endian).
        let faces = [tri(0., 1., 2.)];
        let (bytes, header) = tetra_binary(true, &faces);
        let cut = header + 3 * 12 + 6;
        let (path, msg) = read_error(&dir, "truncated.ply", &bytes[..cut]);
        let place = format!(
            "{}: binary vertex 3 at byte {}: ",
            path.display(),
            header + 3 * 12 + 4
        );
        assert!(msg.starts_with(&place), "expected {place}, got {msg}");
        assert!(msg.contains("truncated") && msg.contains("'y'"), "{msg}");

        // Truncated inside the face list.
        let (path, msg) = read_error(&dir, "truncated_face.ply", &bytes[..bytes.len() - 2]);
        let place = format!(
            "{}: binary face 0 at byte {}: ",
            path.display(),
            header + 48 + 1 + 8
        );
        assert!(msg.starts_with(&place), "expected {place}, got {msg}");

        // A face with two corners.
        let faces = [tri(0., 1., 2.), vec![0.0, 1.0]];
        let (bytes, header) = tetra_binary(false, &faces);
        let (path, msg) = read_error(&dir, "two_corners.ply", &bytes);
        let place = format!(
            "{}: binary face 1 at byte {}: ",
            path.display(),
            header + 48 + 13
        );
        assert!(msg.starts_with(&place), "expected {place}, got {msg}");
        assert!(msg.contains("at least 3 corners"), "{msg}");

        // A non-finite coordinate.
        let (mut bytes, header) = tetra_binary(false, &[tri(0., 1., 2.)]);
        bytes[header + 12 + 4..header + 12 + 8].copy_from_slice(&f32::NAN.to_le_bytes());
        let (path, msg) = read_error(&dir, "nan.ply", &bytes);
        let place = format!(
            "{}: binary vertex 1 at byte {}: ",
            path.display(),
            header + 16
        );
        assert!(
            msg.starts_with(&place) && msg.contains("non-finite"),
            "{msg}"
        );

        // The tetrahedron itself reads, in both byte orders.
        for big in [false, true] {
            let (bytes, _) = tetra_binary(big, &[tri(0., 2., 1.), tri(0., 1., 3.)]);
            let path = write(&dir, "tetra.ply", &bytes);
            let mesh = read_mesh(&path).unwrap();
            assert_eq!(mesh.vertices[3], [0.0, 0.0, 1.0]);
            assert_eq!(mesh.triangles, vec![[0, 2, 1], [0, 1, 3]]);
        }
    }

    #[test]
    fn ply_text_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let head = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n\
                    property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n";
        let ok = format!("{head}0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n");
        let p = write(&dir, "ok.ply", ok.as_bytes());
        assert_eq!(read_mesh(&p).unwrap().triangles, vec![[0, 1, 2]]);

        let cases: [(&str, String, usize, &str); 11] = [
            (
                "format.ply",
                ok.replace("ascii", "binary_middle_endian"),
                2,
                "unknown PLY format",
            ),
            ("version.ply", ok.replace("1.0", "2.0"), 2, "version"),
            ("magic.ply", ok.replacen("ply", "plx", 1), 1, "'ply'"),
            (
                "no_y.ply",
                ok.replace("property float y\n", "property float w\n"),
                3,
                "no property 'y'",
            ),
            (
                "type.ply",
                ok.replace("float z", "quad z"),
                6,
                "unknown property type 'quad'",
            ),
            (
                "number.ply",
                ok.replace("1 0 0\n", "1 zero 0\n"),
                11,
                "expected a number, found 'zero'",
            ),
            (
                "index.ply",
                ok.replace("3 0 1 2", "3 0 1 3"),
                13,
                "vertex index 3 is out of range",
            ),
            (
                "corners.ply",
                ok.replace("3 0 1 2", "2 0 1"),
                13,
                "at least 3 corners",
            ),
            (
                "short.ply",
                ok.replace("3 0 1 2", "3 0 1"),
                13,
                "the line ends before item 2",
            ),
            (
                "long.ply",
                ok.replace("0 1 0\n", "0 1 0 5\n"),
                12,
                "more values",
            ),
            (
                "counts.ply",
                ok.replace("vertex 3", "vertex 4"),
                13,
                "vertex 3: more values",
            ),
        ];
        for (name, text, line, needle) in cases {
            let (path, msg) = read_error(&dir, name, text.as_bytes());
            assert_at_line(&msg, &path, line, needle);
        }
        // Truncated: more faces declared than present.
        let (path, msg) = read_error(&dir, "trunc.ply", ok.replace("face 1", "face 2").as_bytes());
        assert_at_line(
            &msg,
            &path,
            13,
            "declares 2 'face' elements, but the file ends after 1",
        );
        // No end_header.
        let (path, msg) = read_error(
            &dir,
            "open.ply",
            head.replace("end_header\n", "").as_bytes(),
        );
        assert_at_line(&msg, &path, 8, "without 'end_header'");
        // A point cloud: no faces.
        let cloud = "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n\
                     property float z\nend_header\n1 2 3\n";
        let (path, msg) = read_error(&dir, "cloud.ply", cloud.as_bytes());
        assert!(
            msg.starts_with(&format!("{}: empty mesh", path.display())),
            "{msg}"
        );
    }

    #[test]
    fn off_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let ok = cube_off(); // line 1 comment, 2 OFF, 3 counts, 4-11 vertices, 12-17 faces
        let cases: [(&str, String, usize, &str); 9] = [
            (
                "keyword.off",
                ok.replace("OFF", "OFX"),
                2,
                "expected the keyword OFF",
            ),
            ("4d.off", ok.replace("OFF", "4OFF"), 2, "only 3-D"),
            ("counts.off", ok.replace("8 6 12", "8 six 12"), 3, "counts"),
            (
                "number.off",
                ok.replace("1 1 0\n", "1 1.0.0 0\n"),
                6,
                "vertex 2: expected a number, found '1.0.0'",
            ),
            (
                "few.off",
                ok.replace("1 1 0\n", "1 1\n"),
                6,
                "vertex 2: expected 3 coordinates",
            ),
            (
                "range.off",
                ok.replace("4 1 2 6 5", "4 1 2 6 8"),
                17,
                "face 5: vertex index 8 is out of range",
            ),
            (
                "corners.off",
                ok.replace("4 4 5 6 7", "2 4 5"),
                13,
                "face 1: a face needs at least 3 corners, found 2",
            ),
            (
                "short.off",
                ok.replace("4 4 5 6 7", "4 4 5 6"),
                13,
                "expected 4 vertex indices, found 3",
            ),
            (
                "extra.off",
                ok.replace("8 6 12", "8 5 12"),
                17,
                "unexpected data after the 8 vertices and 5 faces",
            ),
        ];
        for (name, text, line, needle) in cases {
            let (path, msg) = read_error(&dir, name, text.as_bytes());
            assert_at_line(&msg, &path, line, needle);
        }
        let truncated: String = ok.lines().take(8).map(|l| format!("{l}\n")).collect();
        let (path, msg) = read_error(&dir, "trunc.off", truncated.as_bytes());
        assert_at_line(
            &msg,
            &path,
            8,
            "declares 8 vertices, but the file ends after 5",
        );
        let (path, msg) = read_error(&dir, "empty.off", b"# nothing\n");
        assert_at_line(&msg, &path, 1, "empty file");
        let (path, msg) = read_error(&dir, "nofaces.off", b"OFF\n1 0 0\n0 0 0\n");
        assert!(
            msg.starts_with(&format!("{}: empty mesh", path.display())),
            "{msg}"
        );
    }

    #[test]
    fn obj_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let ok = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n";
        let cases: [(&str, String, usize, &str); 7] = [
            (
                "zero.obj",
                ok.replace("f 1 2 3", "f 0 1 2"),
                4,
                "0 is invalid",
            ),
            (
                "range.obj",
                ok.replace("f 1 2 3", "f 1 2 4"),
                4,
                "vertex index 4 is out of range",
            ),
            (
                "relative.obj",
                ok.replace("f 1 2 3", "f -1 -2 -4"),
                4,
                "relative index -4",
            ),
            (
                "number.obj",
                ok.replace("v 1 0 0", "v 1 0 x"),
                2,
                "expected a number, found 'x'",
            ),
            (
                "few.obj",
                ok.replace("v 1 0 0", "v 1 0"),
                2,
                "found 2 coordinates",
            ),
            (
                "corners.obj",
                ok.replace("f 1 2 3", "f 1 2"),
                4,
                "at least 3 corners, found 2",
            ),
            ("index.obj", ok.replace("f 1 2 3", "f 1 2 a/1"), 4, "'a/1'"),
        ];
        for (name, text, line, needle) in cases {
            let (path, msg) = read_error(&dir, name, text.as_bytes());
            assert_at_line(&msg, &path, line, needle);
        }
        // A forward reference that the rest of the file resolves is fine.
        let forward = "v 0 0 0\nf 1 2 3\nv 1 0 0\nv 0 1 0\n";
        let path = write(&dir, "forward.obj", forward.as_bytes());
        assert_eq!(read_mesh(&path).unwrap().triangles, vec![[0, 1, 2]]);
        let (path, msg) = read_error(&dir, "lines.obj", b"v 0 0 0\nv 1 0 0\nl 1 2\n");
        assert!(
            msg.starts_with(&format!("{}: empty mesh", path.display())),
            "{msg}"
        );
    }

    #[test]
    fn missing_file_and_unknown_extension() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.off");
        let err = read_mesh(&missing).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.off"), "{err}");
        let stl = write(&dir, "model.stl", b"solid x\n");
        let msg = read_mesh(&stl).unwrap_err().to_string();
        assert!(
            msg.contains("model.stl") && msg.contains("unknown mesh format"),
            "{msg}"
        );
    }

    #[test]
    fn samples_lie_on_the_cube() {
        let points = sample_surface(&cube(), 5000, 7).unwrap();
        assert_eq!(points.dim(), (5000, 3));
        let mut faces = [0usize; 6];
        for p in points.rows() {
            assert!(p.iter().all(|&x| (0.0..=1.0).contains(&x)), "{p}");
            let on: Vec<usize> = (0..3)
                .flat_map(|d| {
                    [
                        (p[d].abs() < 1e-12, 2 * d),
                        ((p[d] - 1.0).abs() < 1e-12, 2 * d + 1),
                    ]
                })
                .filter_map(|(hit, face)| hit.then_some(face))
                .collect();
            assert!(!on.is_empty(), "{p} is not on the cube's surface");
            faces[on[0]] += 1;
        }
        // Six faces of equal area: 1/6 each, within 5 standard errors.
        let se = (1.0 / 6.0 * 5.0 / 6.0 / 5000.0f64).sqrt();
        for count in faces {
            assert!(
                (count as f64 / 5000.0 - 1.0 / 6.0).abs() < 5.0 * se,
                "{faces:?}"
            );
        }
    }

    #[test]
    fn triangles_are_chosen_by_area() {
        // Areas 1 (z = 0), 0 (a degenerate one at z = 5) and 3 (z = 1).
        let mesh = Mesh {
            vertices: vec![
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [0.0, 2.0, 0.0],
                [0.0, 0.0, 5.0],
                [1.0, 1.0, 5.0],
                [2.0, 2.0, 5.0],
                [0.0, 0.0, 1.0],
                [3.0, 0.0, 1.0],
                [0.0, 2.0, 1.0],
            ],
            triangles: vec![[0, 1, 2], [3, 4, 5], [6, 7, 8]],
        };
        let n = 20000;
        let points = sample_surface(&mesh, n, 2024).unwrap();
        let big = points
            .column(2)
            .iter()
            .filter(|&&z| (z - 1.0).abs() < 1e-12)
            .count();
        let small = points
            .column(2)
            .iter()
            .filter(|&&z| z.abs() < 1e-12)
            .count();
        assert_eq!(
            big + small,
            n,
            "points off both triangles (the degenerate one?)"
        );
        let se = (0.75 * 0.25 / n as f64).sqrt();
        let fraction = big as f64 / n as f64;
        assert!((fraction - 0.75).abs() < 5.0 * se, "fraction {fraction}");
    }

    #[test]
    fn points_are_uniform_inside_a_triangle() {
        // The midpoint subdivision cuts the triangle into 4 of equal area.
        let mesh = Mesh {
            vertices: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            triangles: vec![[0, 1, 2]],
        };
        let n = 20000;
        let points = sample_surface(&mesh, n, 1).unwrap();
        let mut parts = [0usize; 4];
        for p in points.rows() {
            let (x, y) = (p[0], p[1]);
            assert!(
                x >= 0.0 && y >= 0.0 && x + y <= 1.0 + 1e-15 && p[2] == 0.0,
                "{p}"
            );
            let part = if x + y < 0.5 {
                0
            } else if x > 0.5 {
                1
            } else if y > 0.5 {
                2
            } else {
                3
            };
            parts[part] += 1;
        }
        let se = (0.25 * 0.75 / n as f64).sqrt();
        for count in parts {
            assert!(
                (count as f64 / n as f64 - 0.25).abs() < 5.0 * se,
                "{parts:?}"
            );
        }
    }

    #[test]
    fn sampling_is_deterministic_and_follows_the_documented_draws() {
        let mesh = cube();
        let a = sample_surface(&mesh, 1000, 42).unwrap();
        assert_eq!(a, sample_surface(&mesh, 1000, 42).unwrap());
        assert_ne!(a, sample_surface(&mesh, 1000, 43).unwrap());
        assert_eq!(sample_surface(&mesh, 0, 42).unwrap().dim(), (0, 3));

        // One triangle: the draws are (triangle, r1, r2) per point.
        let (p0, p1, p2) = ([1.0, 2.0, 3.0], [4.0, -1.0, 0.5], [-2.0, 0.0, 7.0]);
        let tri = Mesh {
            vertices: vec![p0, p1, p2],
            triangles: vec![[0, 1, 2]],
        };
        let points = sample_surface(&tri, 50, 9).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for row in points.rows() {
            let _triangle: f64 = rng.random();
            let (r1, r2): (f64, f64) = (rng.random(), rng.random());
            for d in 0..3 {
                let expected = (1.0 - r1.sqrt()) * p0[d]
                    + r1.sqrt() * (1.0 - r2) * p1[d]
                    + r1.sqrt() * r2 * p2[d];
                assert!((row[d] - expected).abs() < 1e-12, "{row} vs {expected}");
            }
        }
    }

    #[test]
    fn sampling_rejects_meshes_without_area() {
        let flat = Mesh {
            vertices: vec![[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 2.0]],
            triangles: vec![[0, 1, 2], [0, 0, 1]],
        };
        let msg = sample_surface(&flat, 10, 0).unwrap_err().to_string();
        assert!(
            msg.contains("mesh (3 vertices, 2 triangles)") && msg.contains("area"),
            "{msg}"
        );
        let empty = Mesh::default();
        assert!(sample_surface(&empty, 10, 0).is_err());
        let bad = Mesh {
            vertices: vec![[0.0; 3]; 2],
            triangles: vec![[0, 1, 2]],
        };
        let msg = sample_surface(&bad, 10, 0).unwrap_err().to_string();
        assert!(msg.contains("refers to vertex 2"), "{msg}");
    }

    /// `$TGLML_CACHE/debian-data/cgal/data`, as scripts/fetch-data.sh lays it out.
    fn cgal_data() -> PathBuf {
        let cache = std::env::var_os("TGLML_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("tglml")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tglml")))
            .expect("neither TGLML_CACHE nor HOME is set");
        let dir = cache.join("debian-data/cgal/data");
        assert!(
            dir.is_dir(),
            "{} is missing: run `bash scripts/fetch-data.sh` to unpack the CGAL meshes",
            dir.display()
        );
        dir
    }

    fn mesh_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                mesh_files(&path, out);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "off" | "obj" | "ply"))
            {
                out.push(path);
            }
        }
    }

    #[test]
    fn cgal_meshes_parse_or_fail_clearly() {
        let dir = cgal_data();
        let mut files = Vec::new();
        mesh_files(&dir, &mut files);
        assert!(!files.is_empty(), "no meshes under {}", dir.display());
        let (mut parsed, mut failed, mut triangles) = (0, 0, 0);
        for path in &files {
            match read_mesh(path) {
                Ok(mesh) => {
                    assert!(!mesh.triangles.is_empty());
                    parsed += 1;
                    triangles += mesh.triangles.len();
                }
                Err(e) => {
                    let msg = e.to_string();
                    let name = path.file_name().unwrap().to_string_lossy();
                    assert!(
                        msg.contains(&*name),
                        "the error does not name the file: {msg}"
                    );
                    println!("failed: {msg}");
                    failed += 1;
                }
            }
        }
        println!(
            "CGAL meshes: {} files, {parsed} parsed ({triangles} triangles), {failed} failed",
            files.len()
        );
        assert!(parsed > 0);
    }

    /// V − E + F of the triangulation, with V the vertices that triangles use
    /// and E the distinct undirected edges.
    fn euler_characteristic(mesh: &Mesh) -> i64 {
        let mut used = vec![false; mesh.vertices.len()];
        let mut edges = std::collections::HashSet::new();
        for t in &mesh.triangles {
            for k in 0..3 {
                used[t[k] as usize] = true;
                let (a, b) = (t[k], t[(k + 1) % 3]);
                edges.insert((a.min(b), a.max(b)));
            }
        }
        let v = used.iter().filter(|&&u| u).count() as i64;
        v - edges.len() as i64 + mesh.triangles.len() as i64
    }

    #[test]
    fn cgal_torus_and_eight_have_their_topology() {
        let meshes = cgal_data().join("meshes");
        for (name, chi) in [("torus_quad.off", 0), ("eight.off", -2)] {
            let mesh = read_mesh(&meshes.join(name)).unwrap();
            assert_eq!(euler_characteristic(&mesh), chi, "{name}");
        }
        let torus = read_mesh(&meshes.join("torus_quad.off")).unwrap();
        assert_eq!((torus.vertices.len(), torus.triangles.len()), (25, 50));
    }
}
