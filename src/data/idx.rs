//! Reading IDX files, the format of MNIST and Fashion-MNIST.
//!
//! An IDX file is a header followed by the data:
//!
//! | bytes | content |
//! | --- | --- |
//! | 0–1 | two zero bytes |
//! | 2 | the element type: `0x08` u8, `0x09` i8, `0x0B` i16, `0x0C` i32, `0x0D` f32, `0x0E` f64 |
//! | 3 | the number of dimensions `d` |
//! | 4 … 4 + 4d | the size of each dimension, big-endian u32 |
//! | then | the elements, big-endian, in C (row-major) order |
//!
//! Files may be gzip-compressed (as distributed: `train-images-idx3-ubyte.gz`)
//! or raw; compression is detected from the gzip magic bytes `1f 8b`, not from
//! the file name.
//!
//! Errors name the file and the byte offset of the fault, for example
//! `t10k-images-idx3-ubyte: byte 0: not an IDX file: …`. In a gzip-compressed
//! file the offset counts bytes of the decompressed stream and says so
//! (`byte 16 (decompressed)`); a damaged deflate stream is reported where
//! decompression fails, a checksum mismatch (damage that still decodes) at
//! the end of the stream, where the gzip trailer is checked.
//!
//! [`read_idx_rows`] reads only a range of samples (an MPI rank's shard):
//! on a raw file it seeks straight to them; on a gzip file it decompresses
//! and discards the samples before them.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use ndarray::Array2;

use crate::error::{Error, Result};

/// The element type of an IDX file (byte 2 of the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxType {
    /// `0x08`: unsigned byte (MNIST pixels and labels).
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian 16-bit signed integer.
    I16,
    /// `0x0C`: big-endian 32-bit signed integer.
    I32,
    /// `0x0D`: big-endian IEEE 754 single precision.
    F32,
    /// `0x0E`: big-endian IEEE 754 double precision.
    F64,
}

impl IdxType {
    /// The type for a header's type code, if it is one of the six IDX types.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// The header's type code of this type.
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    /// Whether the type is an integer type (u8, i8, i16, i32).
    pub fn is_integer(self) -> bool {
        !matches!(self, IdxType::F32 | IdxType::F64)
    }

    /// The type's name as in this documentation (`u8`, `i16`, `f32`, …).
    pub fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }

    /// Converts big-endian elements of this type to `f64` (exact for every
    /// IDX type), appending them to `out`. `bytes.len()` must be a multiple of
    /// [`size`](Self::size).
    fn decode_into(self, bytes: &[u8], out: &mut Vec<f64>) {
        match self {
            IdxType::U8 => out.extend(bytes.iter().map(|&b| b as f64)),
            IdxType::I8 => out.extend(bytes.iter().map(|&b| b as i8 as f64)),
            IdxType::I16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| i16::from_be_bytes([c[0], c[1]]) as f64),
            ),
            IdxType::I32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64),
            ),
            IdxType::F32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64),
            ),
            IdxType::F64 => out.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes"))),
            ),
        }
    }
}

/// The header of an IDX file: element type and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    /// The element type.
    pub dtype: IdxType,
    /// The size of each dimension; the first is the number of samples.
    pub shape: Vec<usize>,
    /// Whether the file is gzip-compressed.
    pub gzip: bool,
}

impl IdxHeader {
    /// Length of the header in bytes (of the decompressed stream): 4 + 4 × dimensions.
    pub fn header_len(&self) -> usize {
        4 + 4 * self.shape.len()
    }

    /// Number of elements (the product of the shape; 1 for zero dimensions).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the file holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of samples: the first dimension (1 for a zero-dimensional file).
    pub fn samples(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per sample: the product of all dimensions but the first.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Bytes of data the header announces (checked not to overflow when the
    /// header was read).
    pub fn data_bytes(&self) -> usize {
        self.len() * self.dtype.size()
    }
}

/// The contents of an IDX file, every element converted to `f64` (exactly:
/// every IDX type fits).
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    /// The element type stored in the file.
    pub dtype: IdxType,
    /// The size of each dimension; the first is the number of samples.
    pub shape: Vec<usize>,
    /// The elements in C (row-major) order; `data.len()` is the product of `shape`.
    pub data: Vec<f64>,
}

/// Reads a whole IDX file, gzip-compressed or raw.
///
/// The file must hold exactly the data its header announces: missing bytes
/// and trailing bytes are both errors. For gzip files the whole stream is
/// decompressed, so its CRC-32 and length are checked.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let mut src = Source::open(path)?;
    let header = src.read_header()?;
    let n = header.data_bytes();
    let bytes = src.read_data(&header, n)?;
    src.expect_end(&header, n)?;
    let mut data = Vec::with_capacity(header.len());
    header.dtype.decode_into(&bytes, &mut data);
    Ok(Idx {
        dtype: header.dtype,
        shape: header.shape,
        data,
    })
}

/// Reads only the header of an IDX file (type and shape), for example to
/// learn the number of samples before reading a shard with
/// [`read_idx_rows`]. Reads a few bytes; the data are not checked.
pub fn read_idx_header(path: &Path) -> Result<IdxHeader> {
    Source::open(path)?.read_header()
}

/// Reads an IDX file as a sample matrix: the first dimension is the samples
/// (rows), the others are flattened in C order (a 60000 × 28 × 28 file gives
/// a 60000 × 784 matrix; a 1-D file gives one column). Every value is
/// multiplied by `scale` (`1.0 / 255.0` maps u8 pixels to [0, 1]).
pub fn read_idx_matrix(path: &Path, scale: f64) -> Result<Array2<f64>> {
    let idx = read_idx(path)?;
    if idx.shape.is_empty() {
        return Err(Error::invalid(
            path.display().to_string(),
            "a zero-dimensional IDX file (one scalar) is not a sample matrix",
        ));
    }
    let rows = idx.shape[0];
    let cols: usize = idx.shape[1..].iter().product();
    let mut data = idx.data;
    if scale != 1.0 {
        data.iter_mut().for_each(|v| *v *= scale);
    }
    Array2::from_shape_vec((rows, cols), data)
        .map_err(|e| Error::external(path.display().to_string(), e))
}

/// Reads a 1-D IDX file of integers (u8, i8, i16 or i32), such as the label
/// files of MNIST.
pub fn read_idx_labels(path: &Path) -> Result<Vec<i64>> {
    let idx = read_idx(path)?;
    if idx.shape.len() != 1 {
        return Err(Error::invalid(
            format!("{}: byte 3", path.display()),
            format!(
                "expected a 1-D IDX file of labels, got {} dimensions (shape {:?})",
                idx.shape.len(),
                idx.shape
            ),
        ));
    }
    if !idx.dtype.is_integer() {
        return Err(Error::invalid(
            format!("{}: byte 2", path.display()),
            format!(
                "expected integer labels (u8, i8, i16 or i32), got {} data",
                idx.dtype.name()
            ),
        ));
    }
    Ok(idx.data.into_iter().map(|v| v as i64).collect())
}

/// Reads rows `start .. start + count` of an IDX file as a `count × row_len`
/// matrix (the layout of [`read_idx_matrix`]), every value multiplied by
/// `scale`; the result equals that slice of the full matrix.
///
/// Meant for sharded reading, each MPI rank reading its own rows. A raw
/// file's length is checked against its header and the reader seeks to the
/// rows; a gzip file is decompressed from the start, the rows before `start`
/// discarded, and then decompressed to its end so that its length and CRC-32
/// are checked as in [`read_idx`] (memory use stays that of the requested
/// rows). Asking for rows past the end is an error.
pub fn read_idx_rows(path: &Path, start: usize, count: usize, scale: f64) -> Result<Array2<f64>> {
    let mut src = Source::open(path)?;
    let header = src.read_header()?;
    if header.shape.is_empty() {
        return Err(Error::invalid(
            path.display().to_string(),
            "a zero-dimensional IDX file (one scalar) has no rows",
        ));
    }
    let samples = header.samples();
    let end = start.checked_add(count).filter(|&e| e <= samples);
    let Some(end) = end else {
        return Err(Error::invalid(
            path.display().to_string(),
            format!(
                "rows {start}..{} requested, but the file has {samples} samples",
                start as u128 + count as u128
            ),
        ));
    };
    let row_len = header.row_len();
    let row_bytes = row_len * header.dtype.size();
    let total = header.data_bytes();
    let bytes = if let Reader::Raw(_, file_len) = src.reader {
        let have = file_len.saturating_sub(header.header_len() as u64);
        if have != total as u64 {
            return Err(src.truncated(&header, total as u64, have));
        }
        src.seek_raw((header.header_len() + start * row_bytes) as u64)?;
        src.read_data(&header, count * row_bytes)?
    } else {
        src.skip(&header, start * row_bytes, total)?;
        let bytes = src.read_data(&header, count * row_bytes)?;
        src.skip(&header, (samples - end) * row_bytes, total)?;
        src.expect_end(&header, total)?;
        bytes
    };
    let mut data = Vec::with_capacity(count * row_len);
    header.dtype.decode_into(&bytes, &mut data);
    if scale != 1.0 {
        data.iter_mut().for_each(|v| *v *= scale);
    }
    Array2::from_shape_vec((count, row_len), data)
        .map_err(|e| Error::external(path.display().to_string(), e))
}

/// A reader that counts the bytes taken from the underlying file, so that a
/// gzip error can say how far into the compressed file it happened.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

enum Reader {
    /// A raw file and its length in bytes.
    Raw(BufReader<File>, u64),
    /// A gzip file; the counter counts compressed bytes read.
    Gzip(Box<MultiGzDecoder<Counting<BufReader<File>>>>),
}

/// An open IDX file and the current offset in its (decompressed) stream.
struct Source<'a> {
    path: &'a Path,
    reader: Reader,
    /// Offset in the (decompressed) IDX stream of the next byte to read.
    pos: u64,
    /// Length of the file on disk (compressed length for gzip files).
    file_len: u64,
}

impl<'a> Source<'a> {
    fn open(path: &'a Path) -> Result<Self> {
        let io = |e| Error::io(path, "reading", e);
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut file = BufReader::with_capacity(1 << 16, file);
        let mut magic = [0u8; 2];
        let got = read_full(&mut file, &mut magic).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let reader = if got == 2 && magic == [0x1f, 0x8b] {
            Reader::Gzip(Box::new(MultiGzDecoder::new(Counting {
                inner: file,
                count: 0,
            })))
        } else {
            Reader::Raw(file, file_len)
        };
        Ok(Source {
            path,
            reader,
            pos: 0,
            file_len,
        })
    }

    /// Moves a raw file to `offset` (a no-op on gzip streams, never called there).
    fn seek_raw(&mut self, offset: u64) -> Result<()> {
        if let Reader::Raw(f, _) = &mut self.reader {
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| Error::io(self.path, "reading", e))?;
            self.pos = offset;
        }
        Ok(())
    }

    fn is_gzip(&self) -> bool {
        matches!(self.reader, Reader::Gzip(_))
    }

    /// An error at byte `offset` of the (decompressed) stream.
    fn fault(&self, offset: u64, message: impl Into<String>) -> Error {
        let what = if self.is_gzip() {
            format!("{}: byte {offset} (decompressed)", self.path.display())
        } else {
            format!("{}: byte {offset}", self.path.display())
        };
        Error::invalid(what, message)
    }

    /// Reads into `buf` until it is full or the stream ends; returns the
    /// number of bytes read. Decompression failures become errors that name
    /// the offset in the decompressed stream and in the compressed file.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let got = match &mut self.reader {
            Reader::Raw(f, _) => {
                read_full(f, buf).map_err(|e| Error::io(self.path, "reading", e))?
            }
            Reader::Gzip(gz) => {
                let mut got = 0;
                while got < buf.len() {
                    match gz.read(&mut buf[got..]) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let read = gz.get_ref().count;
                            let at = self.pos + got as u64;
                            let e = e.to_string();
                            let e = if e.starts_with("corrupt") {
                                e
                            } else {
                                format!("corrupt gzip stream: {e}")
                            };
                            return Err(self.fault(
                                at,
                                format!("{e} (compressed bytes read: {read} of {})", self.file_len),
                            ));
                        }
                    }
                }
                got
            }
        };
        self.pos += got as u64;
        Ok(got)
    }

    fn read_header(&mut self) -> Result<IdxHeader> {
        let mut magic = [0u8; 4];
        let got = self.read(&mut magic)?;
        if got < 4 {
            return Err(self.fault(
                0,
                format!(
                    "not an IDX file: {got} bytes, shorter than the 4-byte magic number \
                     (00 00 type dimensions)"
                ),
            ));
        }
        if magic[0] != 0 || magic[1] != 0 {
            let at = if magic[0] != 0 { 0 } else { 1 };
            return Err(self.fault(
                at,
                format!(
                    "not an IDX file: it starts with {:02x} {:02x} {:02x} {:02x}, an IDX file \
                     with 00 00 (then the type code and the number of dimensions)",
                    magic[0], magic[1], magic[2], magic[3]
                ),
            ));
        }
        let Some(dtype) = IdxType::from_code(magic[2]) else {
            return Err(self.fault(
                2,
                format!(
                    "unknown IDX type code 0x{:02x} (expected 0x08 u8, 0x09 i8, 0x0b i16, \
                     0x0c i32, 0x0d f32 or 0x0e f64)",
                    magic[2]
                ),
            ));
        };
        let dims = magic[3] as usize;
        let mut sizes = vec![0u8; 4 * dims];
        let got = self.read(&mut sizes)?;
        if got < sizes.len() {
            return Err(self.fault(
                4 + got as u64,
                format!(
                    "truncated header: {dims} dimensions need {} bytes of sizes after the \
                     magic number, found {got}",
                    4 * dims
                ),
            ));
        }
        let shape: Vec<usize> = sizes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
            .collect();
        let mut bytes = dtype.size();
        for (i, &s) in shape.iter().enumerate() {
            bytes = bytes.checked_mul(s).ok_or_else(|| {
                self.fault(
                    4 + 4 * i as u64,
                    format!(
                        "sizes overflow: shape {shape:?} of {} elements is more than {} bytes",
                        dtype.name(),
                        usize::MAX
                    ),
                )
            })?;
        }
        Ok(IdxHeader {
            dtype,
            shape,
            gzip: self.is_gzip(),
        })
    }

    /// The error for a data section of `found` bytes where `expected` were announced.
    fn truncated(&self, header: &IdxHeader, expected: u64, found: u64) -> Error {
        let h = header.header_len() as u64;
        self.fault(
            h + found.min(expected),
            format!("expected {expected} bytes of data after the {h}-byte header, found {found}"),
        )
    }

    /// Reads the next `n` bytes of data; `n` bytes must be there.
    fn read_data(&mut self, header: &IdxHeader, n: usize) -> Result<Vec<u8>> {
        // Grow as data arrive rather than trusting the header for the allocation.
        let mut buf = Vec::with_capacity(n.min(1 << 26));
        let mut chunk = vec![0u8; n.min(1 << 20)];
        while buf.len() < n {
            let want = (n - buf.len()).min(chunk.len());
            let got = self.read(&mut chunk[..want])?;
            buf.extend_from_slice(&chunk[..got]);
            if got < want {
                let found = self.pos - header.header_len() as u64;
                let found = found + self.remaining()?;
                return Err(self.truncated(header, header.data_bytes() as u64, found));
            }
        }
        Ok(buf)
    }

    /// Discards the next `n` bytes of data; `n` bytes must be there.
    fn skip(&mut self, header: &IdxHeader, mut n: usize, total: usize) -> Result<()> {
        let mut chunk = vec![0u8; n.min(1 << 20)];
        while n > 0 {
            let want = n.min(chunk.len());
            let got = self.read(&mut chunk[..want])?;
            n -= got;
            if got < want {
                let found = self.pos - header.header_len() as u64;
                return Err(self.truncated(header, total as u64, found));
            }
        }
        Ok(())
    }

    /// Counts (and discards) the bytes left in the stream.
    fn remaining(&mut self) -> Result<u64> {
        let start = self.pos;
        let mut chunk = vec![0u8; 1 << 16];
        while self.read(&mut chunk)? > 0 {}
        Ok(self.pos - start)
    }

    /// Checks that the stream ends here, after `total` bytes of data.
    fn expect_end(&mut self, header: &IdxHeader, total: usize) -> Result<()> {
        let extra = self.remaining()?;
        if extra > 0 {
            return Err(self.truncated(header, total as u64, total as u64 + extra));
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;

    const FASHION: &str = "/usr/share/datasets/fashion-mnist";

    /// A Fashion-MNIST file of Debian's dataset-fashion-mnist; fails (not
    /// skips) when the package is missing.
    fn fashion(name: &str) -> PathBuf {
        let p = Path::new(FASHION).join(name);
        assert!(
            p.is_file(),
            "{} is missing: install the Debian package dataset-fashion-mnist by running \
             `bash scripts/setup.sh`",
            p.display()
        );
        p
    }

    /// The numpy reference values of tests/fixtures/idx/make_fixture.py.
    fn reference() -> HashMap<String, Vec<i64>> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/idx/fashion_mnist_reference.txt");
        let text = std::fs::read_to_string(&p).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let mut it = l.split_whitespace();
                let key = it.next().unwrap().to_string();
                (key, it.map(|v| v.parse().unwrap()).collect())
            })
            .collect()
    }

    fn gunzip_to(src: &Path, dir: &Path) -> PathBuf {
        let name = src.file_stem().unwrap();
        let out = dir.join(name);
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(File::open(src).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        std::fs::write(&out, bytes).unwrap();
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn idx_bytes(code: u8, shape: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, code, shape.len() as u8];
        for s in shape {
            out.extend(s.to_be_bytes());
        }
        out.extend(data);
        out
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn err(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn fashion_mnist_matches_numpy_reference() {
        let r = reference();
        for (split, n) in [("t10k", 10000usize), ("train", 60000)] {
            let images = read_idx(&fashion(&format!("{split}-images-idx3-ubyte.gz"))).unwrap();
            assert_eq!(images.shape, vec![n, 28, 28]);
            assert_eq!(images.dtype, IdxType::U8);
            let shape: Vec<i64> = images.shape.iter().map(|&s| s as i64).collect();
            assert_eq!(shape, r[&format!("{split}_images_shape")]);
            assert_eq!(images.data.len(), n * 784);
            let total: f64 = images.data.iter().sum();
            assert_eq!(total as i64, r[&format!("{split}_pixel_total")][0]);
            let sums: Vec<i64> = images.data[..100 * 784]
                .chunks(784)
                .map(|c| c.iter().sum::<f64>() as i64)
                .collect();
            assert_eq!(sums, r[&format!("{split}_sums_first100")]);
            for i in [0, n - 1] {
                let px: Vec<i64> = images.data[i * 784..(i + 1) * 784]
                    .iter()
                    .map(|&v| v as i64)
                    .collect();
                assert_eq!(px, r[&format!("{split}_image_{i}")], "{split} image {i}");
            }

            let labels = fashion(&format!("{split}-labels-idx1-ubyte.gz"));
            let labels = read_idx_labels(&labels).unwrap();
            assert_eq!(labels.len(), n);
            assert_eq!(vec![n as i64], r[&format!("{split}_labels_shape")]);
            let mut counts = vec![0i64; 10];
            for &l in &labels {
                counts[l as usize] += 1;
            }
            assert_eq!(counts, vec![n as i64 / 10; 10]);
            assert_eq!(counts, r[&format!("{split}_label_counts")]);
            assert_eq!(
                labels[..100].to_vec(),
                r[&format!("{split}_labels_first100")]
            );
        }
    }

    #[test]
    fn matrix_and_header_of_fashion_mnist() {
        let r = reference();
        let p = fashion("t10k-images-idx3-ubyte.gz");
        let h = read_idx_header(&p).unwrap();
        assert_eq!(
            h,
            IdxHeader {
                dtype: IdxType::U8,
                shape: vec![10000, 28, 28],
                gzip: true
            }
        );
        assert_eq!((h.samples(), h.row_len(), h.header_len()), (10000, 784, 16));
        let m = read_idx_matrix(&p, 1.0 / 255.0).unwrap();
        assert_eq!(m.dim(), (10000, 784));
        for (j, &v) in r["t10k_image_9999"].iter().enumerate() {
            assert_eq!(m[[9999, j]], v as f64 * (1.0 / 255.0));
        }
        assert!(m.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let l = read_idx_matrix(&fashion("t10k-labels-idx1-ubyte.gz"), 1.0).unwrap();
        assert_eq!(l.dim(), (10000, 1));
        assert_eq!(l[[0, 0]], r["t10k_labels_first100"][0] as f64);
    }

    #[test]
    fn raw_file_reads_identically() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            let gz = fashion(name);
            let raw = gunzip_to(&gz, dir.path());
            assert!(!read_idx_header(&raw).unwrap().gzip);
            assert_eq!(read_idx(&raw).unwrap(), read_idx(&gz).unwrap());
        }
        // Detection is by content: a gzip file without .gz and a raw file with it.
        let raw = dir.path().join("t10k-labels-idx1-ubyte");
        let renamed = write(dir.path(), "labels.gz", &std::fs::read(&raw).unwrap());
        let gz_plain = write(
            dir.path(),
            "labels.idx",
            &std::fs::read(fashion("t10k-labels-idx1-ubyte.gz")).unwrap(),
        );
        assert_eq!(read_idx(&renamed).unwrap(), read_idx(&gz_plain).unwrap());
    }

    #[test]
    fn rows_equal_slices_of_the_full_read() {
        let dir = tempfile::tempdir().unwrap();
        let gz = fashion("t10k-images-idx3-ubyte.gz");
        let raw = gunzip_to(&gz, dir.path());
        let full = read_idx_matrix(&gz, 0.5).unwrap();
        for p in [&gz, &raw] {
            for (start, count) in [
                (0, 1),
                (0, 10000),
                (123, 77),
                (9990, 10),
                (5000, 0),
                (10000, 0),
            ] {
                let rows = read_idx_rows(p, start, count, 0.5).unwrap();
                assert_eq!(
                    rows,
                    full.slice(ndarray::s![start..start + count, ..]),
                    "{} rows {start}+{count}",
                    p.display()
                );
            }
            let e = err(read_idx_rows(p, 9995, 6, 1.0));
            assert!(
                e.contains("rows 9995..10001 requested, but the file has 10000 samples"),
                "{e}"
            );
            assert!(e.starts_with(&p.display().to_string()), "{e}");
        }
        let labels = fashion("t10k-labels-idx1-ubyte.gz");
        let l = read_idx_labels(&labels).unwrap();
        let rows = read_idx_rows(&labels, 40, 3, 1.0).unwrap();
        assert_eq!(rows.dim(), (3, 1));
        assert_eq!(
            rows.column(0).to_vec(),
            l[40..43].iter().map(|&v| v as f64).collect::<Vec<_>>()
        );
    }

    #[test]
    fn every_element_type_raw_and_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(u8, IdxType, Vec<u8>, Vec<f64>)> = vec![
            (
                0x08,
                IdxType::U8,
                vec![0, 1, 254, 255, 7, 9],
                vec![0., 1., 254., 255., 7., 9.],
            ),
            (
                0x09,
                IdxType::I8,
                vec![0, 1, 0x80, 0xff, 0x7f, 3],
                vec![0., 1., -128., -1., 127., 3.],
            ),
            (
                0x0B,
                IdxType::I16,
                [1i16, -2, 300, -32768, 32767, 0]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                vec![1., -2., 300., -32768., 32767., 0.],
            ),
            (
                0x0C,
                IdxType::I32,
                [1i32, -2, 70000, i32::MIN, i32::MAX, 0]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                vec![1., -2., 70000., i32::MIN as f64, i32::MAX as f64, 0.],
            ),
            (
                0x0D,
                IdxType::F32,
                [0.5f32, -1.25, 3e10, 0.1, -0.0, 7.0]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                vec![0.5, -1.25, 3e10f32 as f64, 0.1f32 as f64, -0.0, 7.0],
            ),
            (
                0x0E,
                IdxType::F64,
                [0.5f64, -1.25, 3e100, 0.1, -0.0, 7.0]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                vec![0.5, -1.25, 3e100, 0.1, -0.0, 7.0],
            ),
        ];
        for (code, dtype, data, expected) in cases {
            let bytes = idx_bytes(code, &[3, 2], &data);
            for (name, content) in [("raw", bytes.clone()), ("gz", gzip(&bytes))] {
                let p = write(dir.path(), &format!("{code}.{name}"), &content);
                let idx = read_idx(&p).unwrap();
                assert_eq!((idx.dtype, idx.shape.clone()), (dtype, vec![3, 2]));
                assert_eq!(idx.data, expected, "type {code:#x} {name}");
                let m = read_idx_matrix(&p, 2.0).unwrap();
                assert_eq!(
                    m.row(2).to_vec(),
                    vec![expected[4] * 2.0, expected[5] * 2.0]
                );
                let rows = read_idx_rows(&p, 1, 1, 2.0).unwrap();
                assert_eq!(
                    rows.row(0).to_vec(),
                    vec![expected[2] * 2.0, expected[3] * 2.0]
                );
            }
        }
        // Labels: integer types of one dimension only.
        let p = write(
            dir.path(),
            "l16",
            &idx_bytes(0x0B, &[2], &[0xff, 0xfe, 0, 5]),
        );
        assert_eq!(read_idx_labels(&p).unwrap(), vec![-2, 5]);
        let p = write(
            dir.path(),
            "lf",
            &idx_bytes(0x0D, &[1], &1f32.to_be_bytes()),
        );
        let e = err(read_idx_labels(&p));
        assert!(
            e.ends_with("lf: byte 2: expected integer labels (u8, i8, i16 or i32), got f32 data"),
            "{e}"
        );
        let p = write(dir.path(), "l2", &idx_bytes(0x08, &[1, 2], &[1, 2]));
        let e = err(read_idx_labels(&p));
        assert!(
            e.contains("l2: byte 3: expected a 1-D IDX file of labels, got 2 dimensions"),
            "{e}"
        );
        // Empty files of some shape are fine.
        let p = write(dir.path(), "empty", &idx_bytes(0x08, &[0, 28, 28], &[]));
        assert_eq!(read_idx_matrix(&p, 1.0).unwrap().dim(), (0, 784));
    }

    #[test]
    fn corrupt_files_name_the_file_and_the_byte() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();

        // Missing file: an I/O error naming it.
        let missing = dir.path().join("nope.gz");
        let e = read_idx(&missing).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Io {
                    action: "reading",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("{d}/nope.gz: reading: ")),
            "{e}"
        );

        // Bad magic (a PNG signature), raw and gzip-compressed.
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let p = write(dir.path(), "x.png", png);
        let e = err(read_idx(&p));
        assert_eq!(
            e,
            format!(
                "{d}/x.png: byte 0: not an IDX file: it starts with 89 50 4e 47, an IDX file \
                 with 00 00 (then the type code and the number of dimensions)"
            )
        );
        let p = write(dir.path(), "x.gz", &gzip(png));
        let e = err(read_idx(&p));
        assert!(
            e.starts_with(&format!("{d}/x.gz: byte 0 (decompressed): not an IDX file")),
            "{e}"
        );
        let p = write(dir.path(), "short", &[0, 0]);
        let e = err(read_idx(&p));
        assert!(
            e.starts_with(&format!("{d}/short: byte 0: not an IDX file: 2 bytes")),
            "{e}"
        );

        // Unknown type code.
        let p = write(dir.path(), "t", &idx_bytes(0x0A, &[1], &[0]));
        let e = err(read_idx(&p));
        assert!(
            e.starts_with(&format!("{d}/t: byte 2: unknown IDX type code 0x0a")),
            "{e}"
        );

        // Truncated header.
        let p = write(dir.path(), "h", &[0, 0, 8, 3, 0, 0, 0, 5, 0, 0]);
        let e = err(read_idx(&p));
        assert!(
            e.ends_with("h: byte 10: truncated header: 3 dimensions need 12 bytes of sizes after the magic number, found 6"),
            "{e}"
        );

        // Sizes overflowing.
        let p = write(dir.path(), "o", &idx_bytes(0x0E, &[u32::MAX; 4], &[]));
        let e = err(read_idx(&p));
        assert!(
            e.starts_with(&format!("{d}/o: byte 8: sizes overflow: shape")),
            "{e}"
        );

        // Truncated and overlong data, raw: the real t10k labels cut short.
        let raw = gunzip_to(&fashion("t10k-labels-idx1-ubyte.gz"), dir.path());
        let bytes = std::fs::read(&raw).unwrap();
        let p = write(dir.path(), "cut", &bytes[..bytes.len() - 100]);
        let e = err(read_idx(&p));
        assert_eq!(
            e,
            format!("{d}/cut: byte 9908: expected 10000 bytes of data after the 8-byte header, found 9900")
        );
        assert_eq!(err(read_idx_rows(&p, 0, 1, 1.0)), e);
        let mut long = bytes.clone();
        long.extend([1, 2, 3]);
        let p = write(dir.path(), "long", &long);
        let e = err(read_idx(&p));
        assert_eq!(
            e,
            format!("{d}/long: byte 10008: expected 10000 bytes of data after the 8-byte header, found 10003")
        );
        // The same, gzip-compressed (a valid gzip stream of a short IDX file).
        let p = write(dir.path(), "cut.gz", &gzip(&bytes[..bytes.len() - 100]));
        let e = err(read_idx(&p));
        assert_eq!(
            e,
            format!("{d}/cut.gz: byte 9908 (decompressed): expected 10000 bytes of data after the 8-byte header, found 9900")
        );
        assert_eq!(err(read_idx_rows(&p, 9000, 1, 1.0)), e);

        // A truncated gzip file and a flipped byte inside the compressed stream.
        let gz = std::fs::read(fashion("t10k-images-idx3-ubyte.gz")).unwrap();
        let p = write(dir.path(), "half.gz", &gz[..gz.len() / 2]);
        let e = err(read_idx(&p));
        assert!(e.starts_with(&format!("{d}/half.gz: byte ")), "{e}");
        assert!(
            e.contains(" (decompressed): corrupt gzip stream: incomplete"),
            "{e}"
        );
        let e2 = err(read_idx_rows(&p, 0, 1, 1.0));
        assert!(e2.contains("corrupt gzip stream"), "{e2}");
        for at in [gz.len() / 3, gz.len() / 2, gz.len() - 20] {
            let mut flipped = gz.clone();
            flipped[at] ^= 0x5a;
            let p = write(dir.path(), "flip.gz", &flipped);
            let e = err(read_idx(&p));
            assert!(
                e.starts_with(&format!("{d}/flip.gz: byte ")),
                "flip at {at}: {e}"
            );
            assert!(e.contains("(decompressed): "), "flip at {at}: {e}");
        }
        // The gzip trailer (CRC-32) is checked.
        let mut crc = gz.clone();
        let n = crc.len();
        crc[n - 8] ^= 1;
        let p = write(dir.path(), "crc.gz", &crc);
        let e = err(read_idx(&p));
        assert!(
            e.starts_with(&format!(
                "{d}/crc.gz: byte 7840016 (decompressed): corrupt gzip stream does not have a \
                 matching checksum (compressed bytes read: {n} of {n})"
            )),
            "{e}"
        );
    }
}
