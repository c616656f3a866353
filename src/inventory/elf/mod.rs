//! ELF reader for container inventories: given the bytes of one file from a
//! container root filesystem, it reports what the dynamic loader would need to
//! run it (interpreter, DT_NEEDED, search paths, symbol versions required and
//! provided, the x86-64 ISA level it was built for) without executing anything.
//! The input is untrusted and this runs as root, so every read is bounds-checked,
//! arithmetic on file values is checked, and any malformation becomes an
//! [`ElfError`] naming what was being read instead of a panic. It works on bytes
//! (a slice or a memory map), never on paths, and reads the loader's view (program
//! headers and the dynamic segment) rather than section headers wherever the two
//! overlap, since section headers can be stripped without affecting execution.

use std::collections::HashMap;

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::Elf;
use goblin::elf::dynamic::{self, Dyn, Dynamic};
use goblin::elf::header::{self, Header};
use goblin::elf::note::{NT_GNU_PROPERTY_TYPE_0, NoteDataIterator};
use goblin::elf::program_header::{self, ProgramHeader};
use goblin::elf::section_header::{self, SectionHeader};
use goblin::elf::sym::{self, Sym};
use goblin::elf::symver::{self, VerdefSection, VerneedSection};

/// GNU property: the x86 ISA levels a file needs (binutils' `-z x86-64-v*`).
const GNU_PROPERTY_X86_ISA_1_NEEDED: u32 = 0xc000_8002;
/// `e_phnum` value meaning the real count is in section header 0's `sh_info`.
const PN_XNUM: u16 = 0xffff;
/// Longest string `read_symbol_string` returns.
const MAX_SYMBOL_STRING: usize = 4096;
/// The most dynamic symbols read from one object. The largest real shared libraries
/// (PyTorch's, CUDA's, LLVM's) define a few hundred thousand; a table beyond this is
/// refused rather than costing the hook seconds and gigabytes.
pub const MAX_DYNAMIC_SYMBOLS: usize = 1 << 20;
/// Accounting cost of one output entry on top of its string bytes, so that a
/// crafted table of many empty names is bounded too.
const ENTRY_COST: usize = 32;

/// ELF file class (`EI_CLASS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ElfClass {
    Elf32,
    Elf64,
}

/// Byte order of the file (`EI_DATA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ElfEndian {
    Little,
    Big,
}

/// What kind of object the file is, from `e_type` and the dynamic section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ElfKind {
    /// `ET_EXEC`: a position-dependent executable.
    Executable,
    /// `ET_DYN` marked `DF_1_PIE`, or with an interpreter and no soname
    /// (PIEs from linkers older than the flag).
    PieExecutable,
    /// `ET_DYN` that is not a PIE (glibc's libc.so.6 has an interpreter but also a soname).
    SharedObject,
    /// `ET_REL`: an object file.
    Relocatable,
    /// Core dumps and anything else.
    Other,
}

/// One version required from a dependency (a `Vernaux` entry).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NeededVersion {
    pub name: String,
    /// `VER_FLG_WEAK`: the loader does not fail when the version is missing.
    pub weak: bool,
}

/// The versions required from one dependency (a `Verneed` entry).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct VersionNeed {
    pub file: String,
    pub versions: Vec<NeededVersion>,
}

/// What the dynamic loader needs to know about one ELF file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ElfInfo {
    pub class: ElfClass,
    pub endian: ElfEndian,
    /// `e_machine`.
    pub machine: u16,
    pub kind: ElfKind,
    /// `PT_INTERP`, without its terminating NUL.
    pub interpreter: Option<String>,
    /// `DT_SONAME` (the last one, as glibc keeps the last entry of a tag).
    pub soname: Option<String>,
    /// `DT_NEEDED`, in order.
    pub needed: Vec<String>,
    /// The last `DT_RPATH` split on ':'; empty elements are kept because the
    /// loader reads them as the current directory.
    pub rpath: Vec<String>,
    /// The last `DT_RUNPATH` split on ':', empty elements kept.
    pub runpath: Vec<String>,
    /// Version names this file defines (`DT_VERDEF`), without the `VER_FLG_BASE`
    /// entry that carries the file's own name.
    pub version_definitions: Vec<String>,
    /// Versions required per dependency (`DT_VERNEED`).
    pub version_needs: Vec<VersionNeed>,
    /// `GNU_PROPERTY_X86_ISA_1_NEEDED` from the GNU property note: bit 0
    /// baseline, bit 1 x86-64-v2, bit 2 v3, bit 3 v4. None when absent or not x86.
    pub x86_isa_needed: Option<u32>,
    /// An executable (PIE or not) with no interpreter and no `DT_NEEDED`.
    pub is_static: bool,
}

/// Why an ELF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file")]
    NotElf,
    #[error("malformed ELF: {0}")]
    Malformed(String),
}

fn malformed(message: String) -> ElfError {
    ElfError::Malformed(message)
}

/// True when `bytes` starts with the ELF magic number.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(header::ELFMAG)
}

impl ElfInfo {
    /// Reads the loader-relevant facts of an ELF file. Touches the ELF and program
    /// headers, the dynamic segment, its string table, the version tables and the
    /// note segments; never the symbol tables or relocations.
    pub fn parse(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
        let image = Image::open(bytes)?;
        let mut budget = Budget::for_input(bytes);
        let interpreter = image.interpreter()?;
        let dynamic = image.dynamic()?;
        let (deps, versions) = match &dynamic {
            Some(table) => (
                DynamicDeps::read(table, &mut budget)?,
                VersionTables::read(&image, table, &mut budget)?,
            ),
            None => (DynamicDeps::default(), VersionTables::default()),
        };
        let kind = classify(
            image.header.e_type,
            deps.flags_1,
            interpreter.is_some(),
            deps.soname.is_some(),
        );
        let is_static = matches!(kind, ElfKind::Executable | ElfKind::PieExecutable)
            && interpreter.is_none()
            && deps.needed.is_empty();
        Ok(ElfInfo {
            class: image.class(),
            endian: image.endian(),
            machine: image.header.e_machine,
            kind,
            interpreter,
            soname: deps.soname,
            needed: deps.needed,
            rpath: deps.rpath,
            runpath: deps.runpath,
            version_definitions: versions.definition_names(),
            version_needs: versions.needs_public(),
            x86_isa_needed: image.x86_isa_needed()?,
            is_static,
        })
    }

    /// The architecture name used by container platforms (`uname -m` style).
    pub fn machine_name(&self) -> &'static str {
        let is64 = self.class == ElfClass::Elf64;
        let little = self.endian == ElfEndian::Little;
        match self.machine {
            header::EM_X86_64 => "x86_64",
            header::EM_386 => "i386",
            header::EM_AARCH64 => "aarch64",
            header::EM_ARM => "arm",
            header::EM_PPC64 if little => "ppc64le",
            header::EM_PPC64 => "ppc64",
            header::EM_PPC => "ppc",
            header::EM_RISCV if is64 => "riscv64",
            header::EM_RISCV => "riscv32",
            header::EM_S390 if is64 => "s390x",
            header::EM_S390 => "s390",
            header::EM_LOONGARCH => "loongarch64",
            _ => "unknown",
        }
    }

    /// The x86-64 micro-architecture level the file needs: the highest bit set in
    /// `x86_isa_needed`, plus one (1 = baseline .. 4 = v4). Bits above v4 are
    /// reported as 5 and up rather than dropped, so that a level this code does
    /// not know yet is never mistaken for a lower one.
    pub fn x86_isa_level(&self) -> Option<u8> {
        let bits = self.x86_isa_needed.filter(|bits| *bits != 0)?;
        u8::try_from(u32::BITS - bits.leading_zeros()).ok()
    }

    /// Every (dependency file, version) pair from `version_needs`.
    pub fn required_versions(&self) -> impl Iterator<Item = (&str, &NeededVersion)> {
        self.version_needs.iter().flat_map(|need| {
            need.versions
                .iter()
                .map(move |version| (need.file.as_str(), version))
        })
    }
}

fn classify(e_type: u16, flags_1: u64, has_interp: bool, has_soname: bool) -> ElfKind {
    match e_type {
        header::ET_EXEC => ElfKind::Executable,
        header::ET_REL => ElfKind::Relocatable,
        header::ET_DYN if flags_1 & dynamic::DF_1_PIE != 0 => ElfKind::PieExecutable,
        header::ET_DYN if has_interp && !has_soname => ElfKind::PieExecutable,
        header::ET_DYN => ElfKind::SharedObject,
        _ => ElfKind::Other,
    }
}

/// One entry of the dynamic symbol table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct DynSymbol {
    pub name: String,
    /// `st_shndx != SHN_UNDEF`.
    pub defined: bool,
    /// `STB_WEAK` binding.
    pub weak: bool,
    /// `STT_FUNC` or `STT_GNU_IFUNC`.
    pub is_function: bool,
    /// Version name from `.gnu.version` (DT_VERSYM) when it is neither local nor global.
    pub version: Option<String>,
    /// The hidden bit of the version: a non-default version (`name@VER`, not `name@@VER`).
    pub hidden: bool,
}

/// Dynamic symbol table (.dynsym), with version names from .gnu.version when
/// present. The null symbol and symbols without a name are left out. A file
/// without a dynamic segment has no dynamic symbols.
pub fn dynamic_symbols(bytes: &[u8]) -> Result<Vec<DynSymbol>, ElfError> {
    let image = Image::open(bytes)?;
    let Some(table) = image.dynamic()? else {
        return Ok(Vec::new());
    };
    let Some(syms) = image.dynamic_symbol_table(&table)? else {
        return Ok(Vec::new());
    };
    let mut budget = Budget::for_input(bytes);
    let versions = VersionTables::read(&image, &table, &mut budget)?;
    let names = versions.names_by_index();
    let versym = table
        .tag(dynamic::DT_VERSYM)
        .and_then(|addr| image.at_vaddr(addr));
    let mut out = Vec::new();
    for (index, sym) in syms.iter().enumerate().skip(1) {
        let name = table
            .strtab
            .get(sym.st_name as u64, &mut budget, "symbol name")?;
        if name.is_empty() {
            continue;
        }
        let raw_version =
            versym.and_then(|data| read_u16(data, index.checked_mul(2)?, image.big()));
        let version = raw_version
            .map(|v| v & symver::VERSYM_VERSION)
            .filter(|v| *v > symver::VER_NDX_GLOBAL)
            .and_then(|v| names.get(&v))
            .map(|v| v.to_string());
        budget.charge(version.as_ref().map_or(0, String::len), "symbol versions")?;
        out.push(DynSymbol {
            name,
            defined: sym.st_shndx != section_header::SHN_UNDEF as usize,
            weak: sym.st_bind() == sym::STB_WEAK,
            is_function: matches!(sym.st_type(), sym::STT_FUNC | sym::STT_GNU_IFUNC),
            hidden: version.is_some()
                && raw_version.is_some_and(|v| v & symver::VERSYM_HIDDEN != 0),
            version,
        });
    }
    Ok(out)
}

/// Reads the NUL-terminated string stored at a defined data symbol (e.g. MPICH's
/// `const char MPII_Version_string[]`, Open MPI's `ompi_version_string`) by mapping
/// st_value through the section/segment containing it to a file offset. Looks in
/// .dynsym first, then .symtab. None if absent, undefined, in .bss, empty, or not
/// a printable string (which also rules out pointers such as `const char *x`,
/// whose file bytes are an address or zero). The length is capped at 4096 bytes
/// (and at `st_size` when set).
pub fn read_symbol_string(bytes: &[u8], symbol: &str) -> Option<String> {
    let image = Image::open(bytes).ok()?;
    // Section headers are optional here: without them the segments still map it.
    let sections = image.section_headers().unwrap_or_default();
    let sym = image.find_defined_symbol(&sections, symbol)?;
    let data = image.symbol_bytes(&sections, &sym)?;
    let mut limit = data.len().min(MAX_SYMBOL_STRING);
    if sym.st_size > 0 {
        limit = limit.min(usize::try_from(sym.st_size).unwrap_or(usize::MAX));
    }
    let window = data.get(..limit)?;
    let text = window.split(|b| *b == 0).next().unwrap_or_default();
    printable(text)
}

/// Byte contents of a named section (e.g. ".GCC.command.line", ".go.buildinfo",
/// ".debug_str", ".rodata"), bounds-checked; None if missing, SHT_NOBITS, or the
/// section headers cannot be read. Compressed sections (SHF_COMPRESSED) are
/// returned as stored.
pub fn section_bytes<'a>(bytes: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let (offset, size) = section_range(bytes, name)?;
    file_slice(bytes, offset, size)
}

/// The file ranges `(offset, length)` that [`ElfInfo::parse`] and [`dynamic_symbols`]
/// read beyond the first bytes: the program and section header tables, the interpreter,
/// dynamic and note segments, and the symbol, string, version and hash tables. For a
/// file read piece by piece (from inside an image): fetch these, then ask again, since
/// each answer can only name what the bytes fetched so far point at. Three rounds reach
/// a fixed point: headers, then the tables they locate, then (without section headers)
/// the tables the dynamic segment locates. Code, relocations and data are never named.
pub fn metadata_ranges(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut ranges = vec![(0, 64)];
    let Ok(image) = Image::open(bytes) else {
        return ranges;
    };
    let header = &image.header;
    ranges.push((
        header.e_phoff,
        u64::from(header.e_phnum).saturating_mul(u64::from(header.e_phentsize)),
    ));
    if header.e_shoff != 0 {
        let count = if header.e_shnum == 0 {
            1
        } else {
            header.e_shnum
        };
        ranges.push((
            header.e_shoff,
            u64::from(count).saturating_mul(u64::from(header.e_shentsize)),
        ));
    }
    for ph in &image.phdrs {
        if matches!(
            ph.p_type,
            program_header::PT_INTERP
                | program_header::PT_DYNAMIC
                | program_header::PT_NOTE
                | program_header::PT_GNU_PROPERTY
        ) {
            ranges.push((ph.p_offset, ph.p_filesz));
        }
    }
    let sections = image.section_headers().unwrap_or_default();
    let mut tables = 0;
    for s in &sections {
        if matches!(
            s.sh_type,
            section_header::SHT_DYNSYM
                | section_header::SHT_STRTAB
                | section_header::SHT_SYMTAB
                | section_header::SHT_SYMTAB_SHNDX
                | section_header::SHT_DYNAMIC
                | section_header::SHT_NOTE
                | section_header::SHT_HASH
                | section_header::SHT_GNU_HASH
                | section_header::SHT_GNU_VERSYM
                | section_header::SHT_GNU_VERDEF
                | section_header::SHT_GNU_VERNEED
        ) {
            ranges.push((s.sh_offset, s.sh_size));
            tables += 1;
        }
    }
    if tables == 0 {
        // No section headers to size the tables: from each table the dynamic segment
        // names to the end of its segment's file image.
        if let Ok(Some(table)) = image.dynamic() {
            for tag in [
                dynamic::DT_STRTAB,
                dynamic::DT_SYMTAB,
                dynamic::DT_VERSYM,
                dynamic::DT_VERDEF,
                dynamic::DT_VERNEED,
                dynamic::DT_GNU_HASH,
                dynamic::DT_HASH,
            ] {
                if let Some((offset, data)) =
                    table.tag(tag).and_then(|addr| image.vaddr_to_file(addr))
                {
                    ranges.push((offset as u64, data.len() as u64));
                }
            }
        }
    }
    ranges
}

/// Where a named section's bytes are in the file: `(offset, length)`, as
/// [`section_bytes`] would return them.
pub fn section_range(bytes: &[u8], name: &str) -> Option<(u64, u64)> {
    let image = Image::open(bytes).ok()?;
    let sections = image.section_headers().ok()?;
    let names = image.section_names(&sections)?;
    let section = sections
        .iter()
        .find(|s| name_matches(names, s.sh_name as u64, name))?;
    (section.sh_type != section_header::SHT_NOBITS).then_some((section.sh_offset, section.sh_size))
}

/// Where the bytes [`read_symbol_string`] would read for `symbol` are in the file.
pub fn symbol_range(bytes: &[u8], symbol: &str) -> Option<(u64, u64)> {
    let image = Image::open(bytes).ok()?;
    let sections = image.section_headers().unwrap_or_default();
    let sym = image.find_defined_symbol(&sections, symbol)?;
    let data = image.symbol_bytes(&sections, &sym)?;
    let start = (data.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    Some((start as u64, data.len().min(MAX_SYMBOL_STRING) as u64))
}

fn printable(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok().filter(|t| !t.is_empty())?;
    let ok = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'));
    ok.then(|| text.to_owned())
}

/// The bytes `offset..offset+size` of the file, or None when outside it.
fn file_slice(bytes: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    bytes.get(start..end)
}

fn read_u16(data: &[u8], offset: usize, big: bool) -> Option<u16> {
    crate::input::bytes::Endian::big_if(big).u16_at(data, offset)
}

fn read_u32(data: &[u8], offset: usize, big: bool) -> Option<u32> {
    crate::input::bytes::Endian::big_if(big).u32_at(data, offset)
}

fn read_u64(data: &[u8], offset: usize, big: bool) -> Option<u64> {
    crate::input::bytes::Endian::big_if(big).u64_at(data, offset)
}

/// True when the NUL-terminated string at `offset` of `table` equals `name`,
/// compared in place so that a search does not allocate every symbol name.
fn name_matches(table: &[u8], offset: u64, name: &str) -> bool {
    usize::try_from(offset)
        .ok()
        .and_then(|start| table.get(start..))
        .and_then(|rest| rest.strip_prefix(name.as_bytes()))
        .is_some_and(|rest| rest.first() == Some(&0))
}

/// Caps how much a crafted file can make us allocate: many table entries can
/// point at the same long string, so output size is otherwise unbounded.
struct Budget {
    left: usize,
}

impl Budget {
    /// Honest files produce far less than their own size in strings; twice the
    /// input plus a megabyte leaves ample room for them.
    fn for_input(bytes: &[u8]) -> Budget {
        Budget {
            left: bytes.len().saturating_mul(2).saturating_add(1 << 20),
        }
    }

    fn charge(&mut self, len: usize, what: &str) -> Result<(), ElfError> {
        let cost = len.saturating_add(ENTRY_COST);
        self.left = self
            .left
            .checked_sub(cost)
            .ok_or_else(|| malformed(format!("{what}: more string data than the file can hold")))?;
        Ok(())
    }
}

/// A string table (`.dynstr` found through DT_STRTAB/DT_STRSZ, or a section).
#[derive(Clone, Copy)]
struct StrTab<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl StrTab<'_> {
    /// The string at `offset`; invalid UTF-8 is replaced rather than rejected,
    /// since a garbled name only means that nothing will match it.
    fn get(&self, offset: u64, budget: &mut Budget, purpose: &str) -> Result<String, ElfError> {
        let rest = usize::try_from(offset)
            .ok()
            .and_then(|start| self.data.get(start..))
            .ok_or_else(|| {
                malformed(format!(
                    "{purpose}: offset {offset:#x} is outside {} ({} bytes)",
                    self.what,
                    self.data.len()
                ))
            })?;
        let end = rest.iter().position(|b| *b == 0).ok_or_else(|| {
            malformed(format!(
                "{purpose}: string at offset {offset:#x} of {} is not NUL-terminated",
                self.what
            ))
        })?;
        let raw = rest.get(..end).unwrap_or_default();
        budget.charge(raw.len(), purpose)?;
        Ok(String::from_utf8_lossy(raw).into_owned())
    }
}

/// The ELF and program headers, which every query needs.
struct Image<'a> {
    bytes: &'a [u8],
    header: Header,
    ctx: Ctx,
    phdrs: Vec<ProgramHeader>,
}

impl<'a> Image<'a> {
    fn open(bytes: &'a [u8]) -> Result<Image<'a>, ElfError> {
        if !is_elf(bytes) {
            return Err(ElfError::NotElf);
        }
        let header = Elf::parse_header(bytes)
            .map_err(|e| malformed(format!("reading the ELF header: {e}")))?;
        let container = header
            .container()
            .map_err(|e| malformed(format!("reading EI_CLASS: {e}")))?;
        let endian = header
            .endianness()
            .map_err(|e| malformed(format!("reading EI_DATA: {e}")))?;
        let mut image = Image {
            bytes,
            header,
            ctx: Ctx::new(container, endian),
            phdrs: Vec::new(),
        };
        image.phdrs = image.program_headers()?;
        Ok(image)
    }

    fn class(&self) -> ElfClass {
        match self.ctx.container {
            Container::Big => ElfClass::Elf64,
            Container::Little => ElfClass::Elf32,
        }
    }

    fn endian(&self) -> ElfEndian {
        if self.big() {
            ElfEndian::Big
        } else {
            ElfEndian::Little
        }
    }

    fn big(&self) -> bool {
        self.ctx.le == Endian::Big
    }

    fn is64(&self) -> bool {
        self.ctx.container == Container::Big
    }

    fn program_headers(&self) -> Result<Vec<ProgramHeader>, ElfError> {
        let count = if self.header.e_phnum == PN_XNUM {
            self.first_section()?.map_or(0, |s| s.sh_info as usize)
        } else {
            usize::from(self.header.e_phnum)
        };
        if count == 0 {
            return Ok(Vec::new());
        }
        let size = ProgramHeader::size(self.ctx);
        if usize::from(self.header.e_phentsize) != size {
            return Err(malformed(format!(
                "e_phentsize is {} but program headers of this class are {size} bytes",
                self.header.e_phentsize
            )));
        }
        let offset = self.header.e_phoff;
        let start = usize::try_from(offset)
            .map_err(|_| malformed(format!("program header offset {offset:#x} is too large")))?;
        ProgramHeader::parse(self.bytes, start, count, self.ctx).map_err(|e| {
            malformed(format!(
                "reading {count} program headers at offset {offset:#x}: {e}"
            ))
        })
    }

    /// Section header 0, which holds the real counts when they overflow the ELF header.
    fn first_section(&self) -> Result<Option<SectionHeader>, ElfError> {
        let offset = self.header.e_shoff;
        if offset == 0 {
            return Ok(None);
        }
        let start = usize::try_from(offset)
            .map_err(|_| malformed(format!("section header offset {offset:#x} is too large")))?;
        let first = SectionHeader::parse_from(self.bytes, start, 1, self.ctx).map_err(|e| {
            malformed(format!(
                "reading section header 0 at offset {offset:#x}: {e}"
            ))
        })?;
        Ok(first.into_iter().next())
    }

    /// All section headers; only read when a query needs them, since they sit at
    /// the end of the file (one more page touched) and may be stripped.
    fn section_headers(&self) -> Result<Vec<SectionHeader>, ElfError> {
        let offset = self.header.e_shoff;
        if offset == 0 {
            return Ok(Vec::new());
        }
        let size = SectionHeader::size(self.ctx);
        if usize::from(self.header.e_shentsize) != size {
            return Err(malformed(format!(
                "e_shentsize is {} but section headers of this class are {size} bytes",
                self.header.e_shentsize
            )));
        }
        let start = usize::try_from(offset)
            .map_err(|_| malformed(format!("section header offset {offset:#x} is too large")))?;
        let count = usize::from(self.header.e_shnum);
        SectionHeader::parse(self.bytes, start, count, self.ctx).map_err(|e| {
            malformed(format!(
                "reading section headers at offset {offset:#x}: {e}"
            ))
        })
    }

    /// The section name string table (`e_shstrndx`, or section 0's `sh_link` when escaped).
    fn section_names(&self, sections: &[SectionHeader]) -> Option<&'a [u8]> {
        let mut index = usize::from(self.header.e_shstrndx);
        if index == section_header::SHN_XINDEX as usize {
            index = sections.first()?.sh_link as usize;
        }
        let table = sections.get(index)?;
        file_slice(self.bytes, table.sh_offset, table.sh_size)
    }

    /// File offset and bytes backing virtual address `vaddr`, up to the end of the
    /// file image of the PT_LOAD segment containing it (cut at end of file, so a
    /// truncated file still yields what it has). Addresses in the zero-filled tail
    /// of a segment (.bss) have no file bytes and give None.
    fn vaddr_to_file(&self, vaddr: u64) -> Option<(usize, &'a [u8])> {
        self.phdrs
            .iter()
            .filter(|ph| ph.p_type == program_header::PT_LOAD)
            .find_map(|ph| {
                let delta = vaddr.checked_sub(ph.p_vaddr)?;
                let len = ph.p_filesz.checked_sub(delta).filter(|len| *len > 0)?;
                let start = usize::try_from(ph.p_offset.checked_add(delta)?).ok()?;
                let rest = self.bytes.get(start..)?;
                let len = usize::try_from(len).unwrap_or(usize::MAX).min(rest.len());
                Some((start, rest.get(..len)?))
            })
    }

    fn at_vaddr(&self, vaddr: u64) -> Option<&'a [u8]> {
        self.vaddr_to_file(vaddr).map(|(_, data)| data)
    }

    fn segment_bytes(&self, ph: &ProgramHeader, what: &str) -> Result<&'a [u8], ElfError> {
        file_slice(self.bytes, ph.p_offset, ph.p_filesz).ok_or_else(|| {
            malformed(format!(
                "{what} at offset {:#x} size {:#x} runs past the end of the file ({} bytes)",
                ph.p_offset,
                ph.p_filesz,
                self.bytes.len()
            ))
        })
    }

    /// `PT_INTERP` (the first one, as the kernel uses), up to its first NUL.
    fn interpreter(&self) -> Result<Option<String>, ElfError> {
        let Some(ph) = self
            .phdrs
            .iter()
            .find(|ph| ph.p_type == program_header::PT_INTERP)
        else {
            return Ok(None);
        };
        let data = self.segment_bytes(ph, "PT_INTERP")?;
        let path = data.split(|b| *b == 0).next().unwrap_or_default();
        Ok(Some(String::from_utf8_lossy(path).into_owned()))
    }

    /// The dynamic segment and its string table, if the file has one.
    fn dynamic(&self) -> Result<Option<DynamicTable<'a>>, ElfError> {
        let parsed = Dynamic::parse(self.bytes, &self.phdrs, self.ctx)
            .map_err(|e| malformed(format!("reading PT_DYNAMIC: {e}")))?;
        let Some(parsed) = parsed else {
            return Ok(None);
        };
        let mut table = DynamicTable {
            entries: parsed.dyns,
            strtab: StrTab {
                data: &[],
                what: "the dynamic string table",
            },
        };
        table.strtab.data = self.dynamic_strings(&table)?;
        Ok(Some(table))
    }

    fn dynamic_strings(&self, table: &DynamicTable<'_>) -> Result<&'a [u8], ElfError> {
        let Some(addr) = table.tag(dynamic::DT_STRTAB) else {
            return Ok(&[]);
        };
        let data = self.at_vaddr(addr).ok_or_else(|| {
            malformed(format!(
                "DT_STRTAB address {addr:#x} is not in any PT_LOAD segment's file image"
            ))
        })?;
        let Some(size) = table.tag(dynamic::DT_STRSZ) else {
            return Ok(data);
        };
        usize::try_from(size)
            .ok()
            .and_then(|size| data.get(..size))
            .ok_or_else(|| {
                malformed(format!(
                    "DT_STRSZ {size:#x} at DT_STRTAB {addr:#x} runs past its segment or the file"
                ))
            })
    }

    /// The ISA levels needed, from GNU property notes in PT_NOTE/PT_GNU_PROPERTY
    /// segments (or SHT_NOTE sections for object files, which have no segments).
    /// Only read for x86: the property number is processor-specific.
    fn x86_isa_needed(&self) -> Result<Option<u32>, ElfError> {
        if !matches!(
            self.header.e_machine,
            header::EM_X86_64 | header::EM_386 | header::EM_IAMCU
        ) {
            return Ok(None);
        }
        let mut needed = None;
        for area in self.note_areas()? {
            for desc in gnu_property_notes(area.data, area.align, self.ctx, &area.what)? {
                let bits = x86_isa_needed_property(desc, self.is64(), self.big(), &area.what)?;
                if let Some(bits) = bits {
                    needed = Some(needed.unwrap_or(0) | bits);
                }
            }
        }
        Ok(needed)
    }

    /// The note segments, or the note sections of files without segments.
    fn note_areas(&self) -> Result<Vec<NoteArea<'a>>, ElfError> {
        let mut areas = Vec::new();
        for ph in &self.phdrs {
            if matches!(
                ph.p_type,
                program_header::PT_NOTE | program_header::PT_GNU_PROPERTY
            ) {
                let what = format!("note segment at offset {:#x}", ph.p_offset);
                let data = self.segment_bytes(ph, &what)?;
                areas.push(NoteArea {
                    data,
                    align: ph.p_align,
                    what,
                });
            }
        }
        if self.phdrs.is_empty() {
            for section in self.section_headers()? {
                if section.sh_type == section_header::SHT_NOTE {
                    let what = format!("note section at offset {:#x}", section.sh_offset);
                    let data = file_slice(self.bytes, section.sh_offset, section.sh_size)
                        .ok_or_else(|| {
                            malformed(format!("{what} runs past the end of the file"))
                        })?;
                    areas.push(NoteArea {
                        data,
                        align: section.sh_addralign,
                        what,
                    });
                }
            }
        }
        Ok(areas)
    }

    /// The raw dynamic symbols (index 0 included), located through DT_SYMTAB.
    fn dynamic_symbol_table(&self, table: &DynamicTable<'_>) -> Result<Option<Vec<Sym>>, ElfError> {
        let Some(addr) = table.tag(dynamic::DT_SYMTAB) else {
            return Ok(None);
        };
        let (offset, data) = self.vaddr_to_file(addr).ok_or_else(|| {
            malformed(format!(
                "DT_SYMTAB address {addr:#x} is not in any PT_LOAD segment's file image"
            ))
        })?;
        let count = self.dynamic_symbol_count(table)?;
        if count > MAX_DYNAMIC_SYMBOLS {
            return Err(malformed(format!(
                "dynamic symbol table at {addr:#x} has {count} entries, more than the \
                 {MAX_DYNAMIC_SYMBOLS} this reader takes"
            )));
        }
        let entry = Sym::size(self.ctx.container);
        if count
            .checked_mul(entry)
            .is_none_or(|need| need > data.len())
        {
            return Err(malformed(format!(
                "dynamic symbol table at {addr:#x} with {count} entries runs past its segment or the file"
            )));
        }
        Sym::parse(self.bytes, offset, count, self.ctx)
            .map(Some)
            .map_err(|e| {
                malformed(format!(
                    "reading {count} dynamic symbols at offset {offset:#x}: {e}"
                ))
            })
    }

    /// The number of dynamic symbols: the dynamic section does not record it, so
    /// it comes from the .dynsym section header when there is one, otherwise from
    /// the hash tables the loader itself uses.
    fn dynamic_symbol_count(&self, table: &DynamicTable<'_>) -> Result<usize, ElfError> {
        let entry = Sym::size(self.ctx.container) as u64;
        let from_section = self.section_headers().ok().and_then(|sections| {
            let dynsym = sections
                .iter()
                .find(|s| s.sh_type == section_header::SHT_DYNSYM)?;
            usize::try_from(dynsym.sh_size / entry).ok()
        });
        if let Some(count) = from_section {
            return Ok(count);
        }
        if let Some(addr) = table.tag(dynamic::DT_GNU_HASH) {
            return self
                .at_vaddr(addr)
                .and_then(|data| gnu_hash_symbol_count(data, self.is64(), self.big()))
                .ok_or_else(|| malformed(format!("reading DT_GNU_HASH at {addr:#x}")));
        }
        if let Some(addr) = table.tag(dynamic::DT_HASH) {
            return self
                .at_vaddr(addr)
                .and_then(|data| self.sysv_hash_symbol_count(data))
                .ok_or_else(|| malformed(format!("reading DT_HASH at {addr:#x}")));
        }
        Err(malformed(
            "counting dynamic symbols: no .dynsym section header, DT_GNU_HASH or DT_HASH"
                .to_string(),
        ))
    }

    /// `nchain` of a SysV hash table; 64-bit s390 uses 8-byte words there.
    fn sysv_hash_symbol_count(&self, data: &[u8]) -> Option<usize> {
        let nchain = if self.header.e_machine == header::EM_S390 && self.is64() {
            read_u64(data, 8, self.big())?
        } else {
            u64::from(read_u32(data, 4, self.big())?)
        };
        usize::try_from(nchain).ok()
    }

    /// The first defined symbol named `name`, searched in .dynsym then .symtab.
    fn find_defined_symbol(&self, sections: &[SectionHeader], name: &str) -> Option<Sym> {
        let is_wanted = |sym: &Sym, strtab: &[u8]| {
            sym.st_shndx != section_header::SHN_UNDEF as usize
                && name_matches(strtab, sym.st_name as u64, name)
        };
        let table = self.dynamic().ok().flatten();
        let dynsyms = table
            .as_ref()
            .and_then(|t| self.dynamic_symbol_table(t).ok().flatten());
        if let (Some(table), Some(syms)) = (&table, dynsyms) {
            if let Some(sym) = syms.into_iter().find(|s| is_wanted(s, table.strtab.data)) {
                return Some(sym);
            }
        }
        let symtab = sections
            .iter()
            .find(|s| s.sh_type == section_header::SHT_SYMTAB)?;
        let strtab = sections.get(symtab.sh_link as usize)?;
        let strtab = file_slice(self.bytes, strtab.sh_offset, strtab.sh_size)?;
        let count = usize::try_from(symtab.sh_size / Sym::size(self.ctx.container) as u64).ok()?;
        let offset = usize::try_from(symtab.sh_offset).ok()?;
        let syms = Sym::parse(self.bytes, offset, count, self.ctx).ok()?;
        syms.into_iter().find(|s| is_wanted(s, strtab))
    }

    /// The file bytes from a symbol's value to the end of its section (or of its
    /// segment's file image when there are no section headers).
    fn symbol_bytes(&self, sections: &[SectionHeader], sym: &Sym) -> Option<&'a [u8]> {
        let index = sym.st_shndx;
        // SHN_ABS, SHN_COMMON and escaped indices do not name a section with data.
        if index == 0 || index >= section_header::SHN_LORESERVE as usize {
            return None;
        }
        let Some(section) = sections.get(index) else {
            return self.at_vaddr(sym.st_value);
        };
        if section.sh_type == section_header::SHT_NOBITS {
            return None;
        }
        // In object files st_value is relative to the section, elsewhere it is an address.
        let delta = if self.header.e_type == header::ET_REL {
            sym.st_value
        } else {
            sym.st_value.checked_sub(section.sh_addr)?
        };
        let len = section.sh_size.checked_sub(delta).filter(|len| *len > 0)?;
        let start = section.sh_offset.checked_add(delta)?;
        let rest = self.bytes.get(usize::try_from(start).ok()?..)?;
        rest.get(..usize::try_from(len).unwrap_or(usize::MAX).min(rest.len()))
    }
}

/// A note segment or section, with its alignment and a description for errors.
struct NoteArea<'a> {
    data: &'a [u8],
    align: u64,
    what: String,
}

/// Symbol count from a GNU hash table: one past the last symbol in the longest
/// chain, found by walking from the highest bucket to its end marker (low bit set).
fn gnu_hash_symbol_count(data: &[u8], is64: bool, big: bool) -> Option<usize> {
    let nbuckets = read_u32(data, 0, big)? as usize;
    let symoffset = read_u32(data, 4, big)? as usize;
    let bloom_words = read_u32(data, 8, big)? as usize;
    let word = if is64 { 8 } else { 4 };
    let buckets_at = bloom_words.checked_mul(word)?.checked_add(16)?;
    let chains_at = nbuckets.checked_mul(4)?.checked_add(buckets_at)?;
    let mut last = 0usize;
    for bucket in 0..nbuckets {
        let at = bucket.checked_mul(4)?.checked_add(buckets_at)?;
        last = last.max(read_u32(data, at, big)? as usize);
    }
    if last < symoffset {
        // Every bucket is empty: only the unhashed symbols before symoffset exist.
        return Some(symoffset);
    }
    let mut index = last;
    loop {
        let at = (index - symoffset).checked_mul(4)?.checked_add(chains_at)?;
        let hash = read_u32(data, at, big)?;
        index = index.checked_add(1)?;
        if hash & 1 != 0 {
            return Some(index);
        }
    }
}

/// Descriptors of the NT_GNU_PROPERTY_TYPE_0 notes owned by "GNU" in one note area.
fn gnu_property_notes<'a>(
    data: &'a [u8],
    align: u64,
    ctx: Ctx,
    what: &str,
) -> Result<Vec<&'a [u8]>, ElfError> {
    // glibc ignores note segments whose alignment it does not understand; so do we.
    let align = match align {
        0..=4 => 4,
        8 => 8,
        _ => return Ok(Vec::new()),
    };
    let notes = NoteDataIterator {
        data,
        size: data.len(),
        offset: 0,
        ctx: (align, ctx),
    };
    let mut out = Vec::new();
    for note in notes {
        let note = note.map_err(|e| malformed(format!("reading {what}: {e}")))?;
        if note.name == "GNU" && note.n_type == NT_GNU_PROPERTY_TYPE_0 {
            out.push(note.desc);
        }
    }
    Ok(out)
}

/// GNU_PROPERTY_X86_ISA_1_NEEDED from one property note descriptor: an array of
/// (type u32, size u32, data) padded to 8 bytes on ELF64 and 4 on ELF32.
fn x86_isa_needed_property(
    desc: &[u8],
    is64: bool,
    big: bool,
    what: &str,
) -> Result<Option<u32>, ElfError> {
    let align = if is64 { 8 } else { 4 };
    let mut offset = 0usize;
    let mut needed = None;
    while offset < desc.len() {
        let bad = || malformed(format!("reading GNU property at byte {offset} of {what}"));
        let pr_type = read_u32(desc, offset, big).ok_or_else(bad)?;
        let size =
            read_u32(desc, offset.checked_add(4).ok_or_else(bad)?, big).ok_or_else(bad)? as usize;
        let start = offset.checked_add(8).ok_or_else(bad)?;
        let end = start.checked_add(size).ok_or_else(bad)?;
        let data = desc.get(start..end).ok_or_else(bad)?;
        if pr_type == GNU_PROPERTY_X86_ISA_1_NEEDED {
            let bits = read_u32(data, 0, big)
                .filter(|_| size == 4)
                .ok_or_else(bad)?;
            needed = Some(needed.unwrap_or(0) | bits);
        }
        offset = end.checked_next_multiple_of(align).ok_or_else(bad)?;
    }
    Ok(needed)
}

/// The entries of the dynamic segment and its string table.
struct DynamicTable<'a> {
    entries: Vec<Dyn>,
    strtab: StrTab<'a>,
}

impl DynamicTable<'_> {
    /// The value of the last entry with `tag`: glibc keeps the last one it sees.
    fn tag(&self, tag: u64) -> Option<u64> {
        self.entries
            .iter()
            .rev()
            .find(|d| d.d_tag == tag)
            .map(|d| d.d_val)
    }
}

/// What the dynamic segment says about dependencies and search paths.
#[derive(Default)]
struct DynamicDeps {
    soname: Option<String>,
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
    flags_1: u64,
}

impl DynamicDeps {
    fn read(table: &DynamicTable<'_>, budget: &mut Budget) -> Result<DynamicDeps, ElfError> {
        let strtab = table.strtab;
        let mut deps = DynamicDeps {
            flags_1: table.tag(dynamic::DT_FLAGS_1).unwrap_or(0),
            ..Default::default()
        };
        for entry in table
            .entries
            .iter()
            .filter(|d| d.d_tag == dynamic::DT_NEEDED)
        {
            deps.needed
                .push(strtab.get(entry.d_val, budget, "DT_NEEDED")?);
        }
        if let Some(offset) = table.tag(dynamic::DT_SONAME) {
            deps.soname = Some(strtab.get(offset, budget, "DT_SONAME")?);
        }
        if let Some(offset) = table.tag(dynamic::DT_RPATH) {
            deps.rpath = split_path(&strtab.get(offset, budget, "DT_RPATH")?);
        }
        if let Some(offset) = table.tag(dynamic::DT_RUNPATH) {
            deps.runpath = split_path(&strtab.get(offset, budget, "DT_RUNPATH")?);
        }
        Ok(deps)
    }
}

fn split_path(path: &str) -> Vec<String> {
    path.split(':').map(str::to_owned).collect()
}

/// A version definition: its index (what .gnu.version entries refer to), flags and name.
struct VersionDef {
    index: u16,
    flags: u16,
    name: String,
}

/// A required version with the index .gnu.version entries refer to it by.
struct VersionRef {
    index: u16,
    version: NeededVersion,
}

struct VersionNeedEntry {
    file: String,
    versions: Vec<VersionRef>,
}

/// The version definition and requirement tables, read through DT_VERDEF and
/// DT_VERNEED (what the loader uses) rather than section headers.
#[derive(Default)]
struct VersionTables {
    defs: Vec<VersionDef>,
    needs: Vec<VersionNeedEntry>,
}

impl VersionTables {
    fn read(
        image: &Image<'_>,
        table: &DynamicTable<'_>,
        budget: &mut Budget,
    ) -> Result<VersionTables, ElfError> {
        let mut tables = VersionTables::default();
        if let Some(section) = version_section(
            image,
            table,
            dynamic::DT_VERDEF,
            dynamic::DT_VERDEFNUM,
            section_header::SHT_GNU_VERDEF,
        )? {
            tables.defs = read_verdefs(image, &section, table.strtab, budget)?;
        }
        if let Some(section) = version_section(
            image,
            table,
            dynamic::DT_VERNEED,
            dynamic::DT_VERNEEDNUM,
            section_header::SHT_GNU_VERNEED,
        )? {
            tables.needs = read_verneeds(image, &section, table.strtab, budget)?;
        }
        Ok(tables)
    }

    fn definition_names(&self) -> Vec<String> {
        self.defs
            .iter()
            .filter(|d| d.flags & symver::VER_FLG_BASE == 0)
            .map(|d| d.name.clone())
            .collect()
    }

    fn needs_public(&self) -> Vec<VersionNeed> {
        self.needs
            .iter()
            .map(|need| VersionNeed {
                file: need.file.clone(),
                versions: need.versions.iter().map(|v| v.version.clone()).collect(),
            })
            .collect()
    }

    /// Version names by the index that .gnu.version entries use; definitions and
    /// requirements share one index space.
    fn names_by_index(&self) -> HashMap<u16, &str> {
        let defs = self.defs.iter().map(|d| (d.index, d.name.as_str()));
        let refs = self.needs.iter().flat_map(|n| {
            n.versions
                .iter()
                .map(|v| (v.index, v.version.name.as_str()))
        });
        defs.chain(refs).collect()
    }
}

/// A stand-in section header for a version table found through the dynamic
/// segment: goblin's version iterators take their location from a section header,
/// while the loader (and we) locate the tables by DT_VERDEF/DT_VERNEED, which
/// also works when section headers have been stripped.
fn version_section(
    image: &Image<'_>,
    table: &DynamicTable<'_>,
    addr_tag: u64,
    count_tag: u64,
    sh_type: u32,
) -> Result<Option<SectionHeader>, ElfError> {
    let Some(addr) = table.tag(addr_tag) else {
        return Ok(None);
    };
    let name = dynamic::tag_to_str(addr_tag);
    let (offset, data) = image.vaddr_to_file(addr).ok_or_else(|| {
        malformed(format!(
            "{name} address {addr:#x} is not in any PT_LOAD segment's file image"
        ))
    })?;
    // glibc follows the vd_next/vn_next chain and ignores the count; without a
    // count tag, do the same by letting only the chain's zero link end the walk.
    let count = table
        .tag(count_tag)
        .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(Some(SectionHeader {
        sh_type,
        sh_offset: offset as u64,
        sh_size: data.len() as u64,
        sh_info: count,
        ..SectionHeader::default()
    }))
}

/// Version definitions. goblin's iterator stops quietly on a bad entry, so a
/// table that ends before its count without a zero `vd_next` is reported here.
fn read_verdefs(
    image: &Image<'_>,
    section: &SectionHeader,
    strtab: StrTab<'_>,
    budget: &mut Budget,
) -> Result<Vec<VersionDef>, ElfError> {
    let parsed = VerdefSection::parse(image.bytes, std::slice::from_ref(section), image.ctx)
        .map_err(|e| malformed(format!("reading DT_VERDEF: {e}")))?;
    let Some(parsed) = parsed else {
        return Ok(Vec::new());
    };
    let mut defs = Vec::new();
    let mut next = 0;
    for def in parsed.iter() {
        next = def.vd_next;
        let aux = def
            .iter()
            .next()
            .ok_or_else(|| malformed(format!("DT_VERDEF entry {} has no name", defs.len())))?;
        let name = strtab.get(aux.vda_name as u64, budget, "DT_VERDEF name")?;
        defs.push(VersionDef {
            index: def.vd_ndx,
            flags: def.vd_flags,
            name,
        });
    }
    check_complete("DT_VERDEF", defs.len(), section.sh_info, next)?;
    Ok(defs)
}

/// Version requirements, with the same completeness check as [`read_verdefs`].
fn read_verneeds(
    image: &Image<'_>,
    section: &SectionHeader,
    strtab: StrTab<'_>,
    budget: &mut Budget,
) -> Result<Vec<VersionNeedEntry>, ElfError> {
    let parsed = VerneedSection::parse(image.bytes, std::slice::from_ref(section), image.ctx)
        .map_err(|e| malformed(format!("reading DT_VERNEED: {e}")))?;
    let Some(parsed) = parsed else {
        return Ok(Vec::new());
    };
    let mut needs = Vec::new();
    let mut next = 0;
    for need in parsed.iter() {
        next = need.vn_next;
        let file = strtab.get(need.vn_file as u64, budget, "DT_VERNEED file")?;
        let mut versions = Vec::new();
        let mut aux_next = 0;
        for aux in need.iter() {
            aux_next = aux.vna_next;
            let name = strtab.get(aux.vna_name as u64, budget, "DT_VERNEED version")?;
            let weak = aux.vna_flags & symver::VER_FLG_WEAK != 0;
            versions.push(VersionRef {
                index: aux.vna_other,
                version: NeededVersion { name, weak },
            });
        }
        check_complete(
            "DT_VERNEED versions",
            versions.len(),
            u32::from(need.vn_cnt),
            aux_next,
        )?;
        needs.push(VersionNeedEntry { file, versions });
    }
    check_complete("DT_VERNEED", needs.len(), section.sh_info, next)?;
    Ok(needs)
}

/// An entry chain that stopped before its declared count must have ended with a
/// zero "next" link; otherwise the entry after the last one read was unreadable.
fn check_complete(what: &str, read: usize, declared: u32, last_next: u32) -> Result<(), ElfError> {
    let short = read < declared as usize;
    if !short || (read > 0 && last_next == 0) {
        return Ok(());
    }
    let of = if declared == u32::MAX {
        String::new()
    } else {
        format!(" of {declared}")
    };
    Err(malformed(format!(
        "{what}: entry {read}{of} lies outside the table"
    )))
}

#[cfg(test)]
mod tests;
