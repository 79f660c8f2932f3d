//! A minimal, safe reader and writer for the Python pickles that Backend.AI puts inside msgpack
//! ext types (6 = Enum, 3 = Decimal, 16 = BinarySize, ...). Reading builds an inert tree; nothing
//! is ever executed or imported, so a hostile pickle can at worst be refused.

/// How many opcodes one pickle may run; real ones have about 15.
pub const MAX_PICKLE_OPCODES: usize = 100_000;

/// What a pickle describes. `Reduce` is "call `callable` with `args`", which is how enums
/// (`SlotTypes('count')`) and decimals (`Decimal('9')`) are pickled.
#[derive(Debug, Clone, PartialEq)]
pub enum PickleValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<PickleValue>),
    List(Vec<PickleValue>),
    Dict(Vec<(PickleValue, PickleValue)>),
    Set(Vec<PickleValue>),
    Global {
        module: String,
        name: String,
    },
    Reduce {
        callable: Box<PickleValue>,
        args: Box<PickleValue>,
    },
    /// `cls.__new__(cls, *args)` (NEWOBJ), later filled by `Build`.
    NewObj {
        class: Box<PickleValue>,
        args: Box<PickleValue>,
    },
    Build {
        object: Box<PickleValue>,
        state: Box<PickleValue>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PickleError {
    #[error("pickle ends early at byte {offset}")]
    Truncated { offset: usize },
    #[error("pickle opcode 0x{opcode:02x} at byte {offset} is not supported")]
    UnsupportedOpcode { opcode: u8, offset: usize },
    #[error("pickle at byte {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("pickle runs more than {MAX_PICKLE_OPCODES} opcodes")]
    TooLong,
}

impl PickleValue {
    /// For `module.Class(single_str_arg)` pickles (enum members, decimals): the three names.
    pub fn as_single_str_call(&self) -> Option<(&str, &str, &str)> {
        let PickleValue::Reduce { callable, args } = self else {
            return None;
        };
        let PickleValue::Global { module, name } = callable.as_ref() else {
            return None;
        };
        match args.as_ref() {
            PickleValue::Tuple(items) => match items.as_slice() {
                [PickleValue::Str(value)] => Some((module, name, value)),
                _ => None,
            },
            _ => None,
        }
    }
}

enum StackItem {
    Value(PickleValue),
    Mark,
}

/// Reads one pickle (protocols 2 to 5) into a [`PickleValue`].
pub fn read(bytes: &[u8]) -> Result<PickleValue, PickleError> {
    let mut reader = PickleReader {
        bytes,
        offset: 0,
        stack: Vec::new(),
        memo: Vec::new(),
    };
    reader.run()
}

struct PickleReader<'a> {
    bytes: &'a [u8],
    offset: usize,
    stack: Vec<StackItem>,
    memo: Vec<(u32, PickleValue)>,
}

impl<'a> PickleReader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], PickleError> {
        if count > self.bytes.len() - self.offset {
            return Err(PickleError::Truncated {
                offset: self.offset,
            });
        }
        let slice = &self.bytes[self.offset..self.offset + count];
        self.offset += count;
        Ok(slice)
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn malformed(&self, what: &'static str) -> PickleError {
        PickleError::Malformed {
            offset: self.offset,
            what,
        }
    }

    fn text(&mut self, len: usize) -> Result<String, PickleError> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.malformed("string is not UTF-8"))
    }

    fn push(&mut self, value: PickleValue) {
        self.stack.push(StackItem::Value(value));
    }

    fn pop(&mut self) -> Result<PickleValue, PickleError> {
        match self.stack.pop() {
            Some(StackItem::Value(value)) => Ok(value),
            Some(StackItem::Mark) => Err(self.malformed("unexpected mark on the stack")),
            None => Err(self.malformed("stack underflow")),
        }
    }

    fn top(&mut self) -> Result<&mut PickleValue, PickleError> {
        match self.stack.last_mut() {
            Some(StackItem::Value(value)) => Ok(value),
            _ => Err(PickleError::Malformed {
                offset: self.offset,
                what: "no value on top of the stack",
            }),
        }
    }

    /// Pops everything down to the last MARK.
    fn pop_to_mark(&mut self) -> Result<Vec<PickleValue>, PickleError> {
        let mut items = Vec::new();
        loop {
            match self.stack.pop() {
                Some(StackItem::Value(value)) => items.push(value),
                Some(StackItem::Mark) => break,
                None => return Err(self.malformed("no mark on the stack")),
            }
        }
        items.reverse();
        Ok(items)
    }

    fn memo_put(&mut self, index: u32) -> Result<(), PickleError> {
        let value = self.top()?.clone();
        self.memo.retain(|(existing, _)| *existing != index);
        self.memo.push((index, value));
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), PickleError> {
        let value = self
            .memo
            .iter()
            .find(|(existing, _)| *existing == index)
            .map(|(_, value)| value.clone())
            .ok_or_else(|| self.malformed("memo index not set"))?;
        self.push(value);
        Ok(())
    }

    fn pairs(items: Vec<PickleValue>) -> Vec<(PickleValue, PickleValue)> {
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut iter = items.into_iter();
        while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
            pairs.push((key, value));
        }
        pairs
    }

    fn run(&mut self) -> Result<PickleValue, PickleError> {
        for _ in 0..MAX_PICKLE_OPCODES {
            let opcode_offset = self.offset;
            let opcode = self.take(1)?[0];
            match opcode {
                0x80 => {
                    self.take(1)?; // PROTO n
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(StackItem::Mark),
                b'N' => self.push(PickleValue::None),
                0x88 => self.push(PickleValue::Bool(true)),
                0x89 => self.push(PickleValue::Bool(false)),
                b'J' => {
                    let number = i32::from_le_bytes(self.le()?);
                    self.push(PickleValue::Int(i64::from(number)));
                }
                b'K' => {
                    let number = self.take(1)?[0];
                    self.push(PickleValue::Int(i64::from(number)));
                }
                b'M' => {
                    let number = u16::from_le_bytes(self.le()?);
                    self.push(PickleValue::Int(i64::from(number)));
                }
                0x8a => {
                    let len = usize::from(self.take(1)?[0]);
                    let bytes = self.take(len)?;
                    if len > 8 {
                        return Err(self.malformed("integer wider than 64 bits"));
                    }
                    let mut number: i64 = 0;
                    for (shift, byte) in bytes.iter().enumerate() {
                        number |= i64::from(*byte) << (8 * shift);
                    }
                    if len > 0 && len < 8 && bytes[len - 1] & 0x80 != 0 {
                        number -= 1i64 << (8 * len);
                    }
                    self.push(PickleValue::Int(number));
                }
                b'G' => {
                    let mut array = [0u8; 8];
                    array.copy_from_slice(self.take(8)?);
                    self.push(PickleValue::Float(f64::from_be_bytes(array)));
                }
                0x8c => {
                    let len = usize::from(self.take(1)?[0]);
                    let text = self.text(len)?;
                    self.push(PickleValue::Str(text));
                }
                b'X' => {
                    let len = u32::from_le_bytes(self.le()?) as usize;
                    let text = self.text(len)?;
                    self.push(PickleValue::Str(text));
                }
                0x8d => {
                    let len = usize::try_from(u64::from_le_bytes(self.le()?))
                        .map_err(|_| self.malformed("string length overflows"))?;
                    let text = self.text(len)?;
                    self.push(PickleValue::Str(text));
                }
                b'C' => {
                    let len = usize::from(self.take(1)?[0]);
                    let bytes = self.take(len)?.to_vec();
                    self.push(PickleValue::Bytes(bytes));
                }
                b'B' => {
                    let len = u32::from_le_bytes(self.le()?) as usize;
                    let bytes = self.take(len)?.to_vec();
                    self.push(PickleValue::Bytes(bytes));
                }
                b')' => self.push(PickleValue::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_to_mark()?;
                    self.push(PickleValue::Tuple(items));
                }
                0x85..=0x87 => {
                    let count = usize::from(opcode - 0x84);
                    let mut items = Vec::with_capacity(count);
                    for _ in 0..count {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(PickleValue::Tuple(items));
                }
                b']' => self.push(PickleValue::List(Vec::new())),
                b'a' => {
                    let item = self.pop()?;
                    match self.top()? {
                        PickleValue::List(items) => items.push(item),
                        _ => return Err(self.malformed("APPEND to a non-list")),
                    }
                }
                b'e' => {
                    let new_items = self.pop_to_mark()?;
                    match self.top()? {
                        PickleValue::List(items) => items.extend(new_items),
                        _ => return Err(self.malformed("APPENDS to a non-list")),
                    }
                }
                b'}' => self.push(PickleValue::Dict(Vec::new())),
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    match self.top()? {
                        PickleValue::Dict(pairs) => pairs.push((key, value)),
                        _ => return Err(self.malformed("SETITEM on a non-dict")),
                    }
                }
                b'u' => {
                    let items = self.pop_to_mark()?;
                    match self.top()? {
                        PickleValue::Dict(pairs) => pairs.extend(Self::pairs(items)),
                        _ => return Err(self.malformed("SETITEMS on a non-dict")),
                    }
                }
                0x8f => self.push(PickleValue::Set(Vec::new())),
                0x90 => {
                    let new_items = self.pop_to_mark()?;
                    match self.top()? {
                        PickleValue::Set(items) => items.extend(new_items),
                        _ => return Err(self.malformed("ADDITEMS to a non-set")),
                    }
                }
                0x91 => {
                    let items = self.pop_to_mark()?;
                    self.push(PickleValue::Set(items));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(PickleValue::Global { module, name });
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (PickleValue::Str(module), PickleValue::Str(name)) => {
                            self.push(PickleValue::Global { module, name })
                        }
                        _ => return Err(self.malformed("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.push(PickleValue::Reduce {
                        callable: Box::new(callable),
                        args: Box::new(args),
                    });
                }
                0x81 => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    self.push(PickleValue::NewObj {
                        class: Box::new(class),
                        args: Box::new(args),
                    });
                }
                b'b' => {
                    let state = self.pop()?;
                    let object = self.pop()?;
                    self.push(PickleValue::Build {
                        object: Box::new(object),
                        state: Box::new(state),
                    });
                }
                0x94 => {
                    let index = self.memo.len() as u32;
                    self.memo_put(index)?;
                }
                b'q' => {
                    let index = u32::from(self.take(1)?[0]);
                    self.memo_put(index)?;
                }
                b'r' => {
                    let index = u32::from_le_bytes(self.le()?);
                    self.memo_put(index)?;
                }
                b'h' => {
                    let index = u32::from(self.take(1)?[0]);
                    self.memo_get(index)?;
                }
                b'j' => {
                    let index = u32::from_le_bytes(self.le()?);
                    self.memo_get(index)?;
                }
                _ => {
                    return Err(PickleError::UnsupportedOpcode {
                        opcode,
                        offset: opcode_offset,
                    });
                }
            }
        }
        Err(PickleError::TooLong)
    }

    /// A newline-terminated ASCII argument (GLOBAL's module and name).
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.bytes[self.offset..];
        let end = rest
            .iter()
            .position(|byte| *byte == b'\n')
            .ok_or(PickleError::Truncated {
                offset: self.offset,
            })?;
        let text = self.text(end)?;
        self.take(1)?;
        Ok(text)
    }
}

/// Writes pickles the way CPython's protocol-5 pickler writes them (framed, memoized), so
/// the peer sees the same bytes it would get from a Python manager.
#[derive(Default)]
pub struct PickleWriter {
    body: Vec<u8>,
    memo_count: u32,
}

impl PickleWriter {
    pub fn new() -> PickleWriter {
        PickleWriter::default()
    }

    fn memoize(&mut self) {
        self.body.push(0x94);
        self.memo_count += 1;
    }

    /// A str, memoized (as CPython does for every string).
    pub fn str(&mut self, text: &str) -> &mut Self {
        let bytes = text.as_bytes();
        if bytes.len() < 256 {
            self.body.push(0x8c);
            self.body.push(bytes.len() as u8);
        } else {
            self.body.push(b'X');
            self.body
                .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        }
        self.body.extend_from_slice(bytes);
        self.memoize();
        self
    }

    /// `module.name` as a global reference (STACK_GLOBAL), memoized.
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.str(module).str(name);
        self.body.push(0x93);
        self.memoize();
        self
    }

    pub fn none(&mut self) -> &mut Self {
        self.body.push(b'N');
        self
    }

    pub fn bool(&mut self, flag: bool) -> &mut Self {
        self.body.push(if flag { 0x88 } else { 0x89 });
        self
    }

    pub fn int(&mut self, number: i64) -> &mut Self {
        if (0..256).contains(&number) {
            self.body.extend_from_slice(&[b'K', number as u8]);
        } else if (0..65536).contains(&number) {
            self.body.push(b'M');
            self.body.extend_from_slice(&(number as u16).to_le_bytes());
        } else if let Ok(small) = i32::try_from(number) {
            self.body.push(b'J');
            self.body.extend_from_slice(&small.to_le_bytes());
        } else {
            let bytes = number.to_le_bytes();
            self.body.extend_from_slice(&[0x8a, 8]);
            self.body.extend_from_slice(&bytes);
        }
        self
    }

    pub fn mark(&mut self) -> &mut Self {
        self.body.push(b'(');
        self
    }

    /// Builds a tuple of the last `count` values (0 to 3 use the short opcodes; more need a
    /// [`mark`](Self::mark) before the items), memoized as CPython does for non-empty tuples.
    pub fn tuple(&mut self, count: usize) -> &mut Self {
        match count {
            0 => {
                self.body.push(b')');
                return self;
            }
            1..=3 => self.body.push(0x84 + count as u8),
            _ => self.body.push(b't'),
        }
        self.memoize();
        self
    }

    /// Calls the callable below the args tuple on the stack, memoized.
    pub fn reduce(&mut self) -> &mut Self {
        self.body.push(b'R');
        self.memoize();
        self
    }

    pub fn empty_dict(&mut self) -> &mut Self {
        self.body.push(b'}');
        self.memoize();
        self
    }

    /// Sets the key/value pairs pushed since the last mark into the dict below the mark.
    pub fn set_items(&mut self) -> &mut Self {
        self.body.push(b'u');
        self
    }

    /// Emits raw opcodes for constructs this writer has no helper for.
    pub fn raw(&mut self, opcodes: &[u8]) -> &mut Self {
        self.body.extend_from_slice(opcodes);
        self
    }

    /// PROTO 5 + one FRAME around the body + STOP.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut body = std::mem::take(&mut self.body);
        body.push(b'.');
        let mut out = Vec::with_capacity(body.len() + 11);
        out.extend_from_slice(&[0x80, 0x05]);
        // CPython frames only payloads of at least 4 bytes (`_FRAME_SIZE_MIN`).
        if body.len() >= 4 {
            out.push(0x95);
            out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        }
        out.extend_from_slice(&body);
        out
    }
}

/// The pickle of `module.class(value)`: an enum member by value (`SlotTypes('count')`) or a
/// `decimal.Decimal('9')`, byte for byte as CPython writes it with protocol 5.
pub fn single_str_call(module: &str, class: &str, value: &str) -> Vec<u8> {
    PickleWriter::new()
        .global(module, class)
        .str(value)
        .tuple(1)
        .reduce()
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps(SlotTypes.COUNT, protocol=5)`, as captured in a 23.09 heartbeat.
    const SLOT_TYPE_COUNT: &str = "80059535000000000000008c1761692e6261636b656e642e636f6d6d6f6e2e7479706573948c09536c6f7454797065739493948c05636f756e7494859452942e";

    #[test]
    fn reads_the_captured_enum_pickle() {
        let value = read(&hex::decode(SLOT_TYPE_COUNT).unwrap()).unwrap();
        assert_eq!(
            value.as_single_str_call(),
            Some(("ai.backend.common.types", "SlotTypes", "count"))
        );
    }

    #[test]
    fn writes_the_enum_pickle_byte_for_byte() {
        assert_eq!(
            hex::encode(single_str_call(
                "ai.backend.common.types",
                "SlotTypes",
                "count"
            )),
            SLOT_TYPE_COUNT
        );
    }

    #[test]
    fn reads_containers_memo_and_protocol_2_globals() {
        // pickle.dumps({"a": [1, 2], "b": (None, True)}, protocol=2)
        let bytes = hex::decode(
            "80027d71002858010000006171015d7102284b014b026558010000006271034e8886710475",
        )
        .unwrap();
        let mut bytes = bytes;
        bytes.push(b'.');
        let value = read(&bytes).unwrap();
        assert_eq!(
            value,
            PickleValue::Dict(vec![
                (
                    PickleValue::Str("a".into()),
                    PickleValue::List(vec![PickleValue::Int(1), PickleValue::Int(2)])
                ),
                (
                    PickleValue::Str("b".into()),
                    PickleValue::Tuple(vec![PickleValue::None, PickleValue::Bool(true)])
                ),
            ])
        );
        let global =
            read(b"\x80\x02cdecimal\nDecimal\nq\x00X\x01\x00\x00\x001q\x01\x85q\x02Rq\x03.")
                .unwrap();
        assert_eq!(
            global.as_single_str_call(),
            Some(("decimal", "Decimal", "1"))
        );
    }

    #[test]
    fn refuses_bad_pickles_without_panicking() {
        assert!(read(b"").is_err());
        assert!(read(b"\x80\x05.").is_err());
        assert!(read(b"\x80\x05\x8c\x05ab").is_err());
        assert!(matches!(
            read(b"\x80\x05\xff."),
            Err(PickleError::UnsupportedOpcode { opcode: 0xff, .. })
        ));
        assert!(read(b"h\x07.").is_err());
        assert!(read(b"t.").is_err());
        assert_eq!(
            read(b"(").unwrap_err(),
            PickleError::Truncated { offset: 1 }
        );
    }
}
