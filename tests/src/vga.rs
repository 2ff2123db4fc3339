//! The image booted in QEMU with a VGA card, seen as the operator sees it on a monitor: PID 1
//! draws on the VT (`console=tty0` last), keys are typed on the emulated keyboard, and the
//! screen is taken as pictures (`screendump`, PPM) that are written as small PNG files.
//!
//! QEMU is driven over QMP (its JSON monitor) on a Unix socket. The serial line goes to a file:
//! with `console=ttyS0 console=tty0` the kernel's messages land there too, but PID 1 draws only
//! on the VT, so which screen is up is known from the display itself:
//!
//! - in VGA text mode (QEMU's direct kernel boot without `vga=`: 80x25 cells of 9x16 pixels,
//!   720x400), from the text buffer at 0xb8000, read with `pmemsave` and decoded from CP437
//!   ([`VgaGuest::text`], [`VgaGuest::wait_for_text`]);
//! - on a framebuffer console (`vga=0x318`: VESA 1024x768, simpledrm/vesafb and fbcon), only
//!   from the picture: [`VgaGuest::wait_stable`] and [`VgaGuest::wait_for_change`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A picture of the screen: `width` x `height` pixels, 3 bytes (R, G, B) each, row by row.
#[derive(Clone, PartialEq, Eq)]
pub struct Screen {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Screen({}x{})", self.width, self.height)
    }
}

/// Columns and rows of the VGA text mode QEMU boots the kernel in.
pub const TEXT_COLS: usize = 80;
pub const TEXT_ROWS: usize = 25;
/// Where the colour text buffer is, and how much memory vgacon may scroll its origin through.
const TEXT_BUFFER: u64 = 0xb8000;
const TEXT_BUFFER_LEN: usize = 0x8000;

impl Screen {
    /// Parses a binary PPM (P6, maxval 255), as QEMU's `screendump` writes it.
    pub fn from_ppm(data: &[u8]) -> Result<Screen, String> {
        // Header: magic, width, height, maxval, separated by whitespace (and # comments),
        // then exactly one whitespace byte before the pixels.
        let mut fields = Vec::new();
        let mut i = 0;
        while fields.len() < 4 {
            while i < data.len() && (data[i].is_ascii_whitespace() || data[i] == b'#') {
                if data[i] == b'#' {
                    while i < data.len() && data[i] != b'\n' {
                        i += 1;
                    }
                } else {
                    i += 1;
                }
            }
            let start = i;
            while i < data.len() && !data[i].is_ascii_whitespace() {
                i += 1;
            }
            if start == i {
                return Err("PPM header is cut short".into());
            }
            fields.push(std::str::from_utf8(&data[start..i]).map_err(|e| e.to_string())?);
        }
        if fields[0] != "P6" {
            return Err(format!("not a binary PPM (magic {:?})", fields[0]));
        }
        let num = |s: &str| {
            s.parse::<usize>()
                .map_err(|e| format!("PPM header {s:?}: {e}"))
        };
        let (width, height, maxval) = (num(fields[1])?, num(fields[2])?, num(fields[3])?);
        if maxval != 255 {
            return Err(format!("PPM maxval {maxval}, expected 255"));
        }
        let body = data.get(i + 1..).unwrap_or(&[]);
        let len = width * height * 3;
        if body.len() < len {
            return Err(format!(
                "PPM {width}x{height} has {} pixel bytes, expected {len}",
                body.len()
            ));
        }
        Ok(Screen {
            width,
            height,
            rgb: body[..len].to_vec(),
        })
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let o = (y * self.width + x) * 3;
        [self.rgb[o], self.rgb[o + 1], self.rgb[o + 2]]
    }

    /// The cell size when this is an 80x25 VGA text mode picture (720x400 or 640x400).
    pub fn text_cell(&self) -> Option<(usize, usize)> {
        let (cw, ch) = (self.width / TEXT_COLS, self.height / TEXT_ROWS);
        let exact = self.width.is_multiple_of(TEXT_COLS) && self.height.is_multiple_of(TEXT_ROWS);
        (exact && (cw == 8 || cw == 9) && (8..=16).contains(&ch)).then_some((cw, ch))
    }

    /// Whether the cell at column `c`, row `r` shows ink (more than one colour).
    fn cell_inked(&self, (cw, ch): (usize, usize), c: usize, r: usize) -> bool {
        let first = self.pixel(c * cw, r * ch);
        (0..ch).any(|y| (0..cw).any(|x| self.pixel(c * cw + x, r * ch + y) != first))
    }

    /// Whether pixel rows `rows` show anything but one colour (e.g. a footer is drawn).
    pub fn has_ink(&self, rows: std::ops::Range<usize>) -> bool {
        let first = self.pixel(0, rows.start);
        rows.flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .any(|(x, y)| self.pixel(x, y) != first)
    }

    /// The distinct colours, in order of first appearance.
    pub fn colours(&self) -> Vec<[u8; 3]> {
        let mut seen = std::collections::HashMap::new();
        let mut out = Vec::new();
        for p in self.rgb.chunks_exact(3) {
            let p = [p[0], p[1], p[2]];
            if seen.len() > 256 && !seen.contains_key(&p) {
                // Too many for a palette: the caller only needs to know that.
                out.push(p);
                return out;
            }
            seen.entry(p).or_insert_with(|| {
                out.push(p);
            });
        }
        out
    }

    /// Encodes the picture as PNG: indexed with the smallest bit depth that holds its colours
    /// (a text console has a handful, so 1 to 4 bits per pixel), RGB when there are more than
    /// 256. The pixels are exact either way.
    pub fn png(&self) -> Vec<u8> {
        let colours = self.colours();
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        enc.set_compression(png::Compression::High);
        let data = if colours.len() <= 256 {
            let bits = match colours.len() {
                0..=2 => 1,
                3..=4 => 2,
                5..=16 => 4,
                _ => 8,
            };
            let index: std::collections::HashMap<[u8; 3], u8> = colours
                .iter()
                .enumerate()
                .map(|(i, c)| (*c, i as u8))
                .collect();
            enc.set_color(png::ColorType::Indexed);
            enc.set_depth(match bits {
                1 => png::BitDepth::One,
                2 => png::BitDepth::Two,
                4 => png::BitDepth::Four,
                _ => png::BitDepth::Eight,
            });
            enc.set_palette(colours.concat());
            enc.set_filter(png::Filter::NoFilter);
            let per_byte = 8 / bits;
            let stride = self.width.div_ceil(per_byte);
            let mut packed = vec![0u8; stride * self.height];
            for y in 0..self.height {
                for x in 0..self.width {
                    let i = index[&self.pixel(x, y)];
                    let shift = 8 - bits * (x % per_byte + 1);
                    packed[y * stride + x / per_byte] |= i << shift;
                }
            }
            packed
        } else {
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            self.rgb.clone()
        };
        let mut w = enc.write_header().expect("PNG header");
        w.write_image_data(&data).expect("PNG data");
        w.finish().expect("PNG end");
        out
    }
}

/// Code page 437, the VGA font's order: what each byte of the text buffer shows.
const CP437_LOW: &str = " ☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼";
const CP437_HIGH: &str = "⌂ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■ ";

pub fn cp437(b: u8) -> char {
    match b {
        0..=0x1f => CP437_LOW.chars().nth(b as usize).unwrap(),
        0x20..=0x7e => b as char,
        _ => CP437_HIGH.chars().nth(b as usize - 0x7f).unwrap(),
    }
}

/// Whether a text buffer cell (character, attribute) draws any ink.
fn text_cell_inked(ch: u8, attr: u8) -> bool {
    let (fg, bg) = (attr & 0x0f, (attr >> 4) & 0x07);
    // Blank glyphs, and the full block (all foreground).
    !matches!(ch, 0x00 | 0x20 | 0xff | 0xdb) && fg != bg
}

/// The kernel's 8x16 console font (`lib/fonts/font_8x16.c`, the VGA font in CP437 order), read
/// from the pinned kernel source tarball, so that a framebuffer console can be read back as
/// text: fbcon draws every character as that glyph in one foreground and one background colour.
pub struct Font {
    glyphs: std::collections::HashMap<[u8; 16], u8>,
}

impl Font {
    pub fn from_kernel_source() -> Font {
        let tarball = sherd_image::kernel::PIN.tarball;
        let member = format!("{}/lib/fonts/font_8x16.c", sherd_image::kernel::PIN.top_dir);
        let out = Command::new("tar")
            .arg("-xOf")
            .arg(tarball)
            .arg(&member)
            .output()
            .expect("tar");
        assert!(
            out.status.success(),
            "{member} from {tarball}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Font::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// The glyph bytes are the `0x..` literals after the font header, once comments (which
    /// also hold `0x..` codes) are removed.
    fn parse(c_source: &str) -> Font {
        let mut code = String::new();
        let mut rest = c_source;
        while let Some(i) = rest.find("/*") {
            code.push_str(&rest[..i]);
            rest = rest[i..].find("*/").map_or("", |j| &rest[i + j + 2..]);
        }
        code.push_str(rest);
        let body = &code[code.find("FONTDATAMAX").expect("font header")..];
        let bytes: Vec<u8> = body
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter_map(|t| t.strip_prefix("0x"))
            .map(|h| u8::from_str_radix(h, 16).expect("hex"))
            .collect();
        assert_eq!(bytes.len(), 256 * 16, "an 8x16 font has 256 glyphs");
        let mut glyphs = std::collections::HashMap::new();
        // Blank look-alikes (NUL, space, 0xFF) read as the first, space is preferred below.
        for (i, g) in bytes.chunks_exact(16).enumerate().rev() {
            glyphs.insert(<[u8; 16]>::try_from(g).unwrap(), i as u8);
        }
        glyphs.insert([0; 16], b' ');
        Font { glyphs }
    }

    /// The text on a framebuffer console drawn with this font from the top-left corner: each
    /// 8x16 cell's background is its most common colour, the rest is ink. A cell that is no
    /// glyph reads as `?`.
    pub fn read(&self, screen: &Screen) -> String {
        let (cols, rows) = (screen.width / 8, screen.height / 16);
        let mut lines = Vec::with_capacity(rows);
        for r in 0..rows {
            let mut line = String::with_capacity(cols);
            for c in 0..cols {
                let mut counts: std::collections::HashMap<[u8; 3], usize> = Default::default();
                for y in 0..16 {
                    for x in 0..8 {
                        *counts
                            .entry(screen.pixel(c * 8 + x, r * 16 + y))
                            .or_default() += 1;
                    }
                }
                let bg = counts.into_iter().max_by_key(|(_, n)| *n).unwrap().0;
                let mut mask = [0u8; 16];
                for (y, m) in mask.iter_mut().enumerate() {
                    for x in 0..8 {
                        if screen.pixel(c * 8 + x, r * 16 + y) != bg {
                            *m |= 0x80 >> x;
                        }
                    }
                }
                line.push(self.glyphs.get(&mask).map_or('?', |b| cp437(*b)));
            }
            lines.push(line.trim_end().to_owned());
        }
        lines.join("\n")
    }
}

/// Reads the visible 80x25 text out of the text buffer `vram`: vgacon scrolls by moving the
/// display origin through it a row at a time, so the window whose inked cells best match the
/// picture's is the one on screen. Rows lose their trailing blanks.
pub fn visible_text(vram: &[u8], screen: &Screen) -> Option<String> {
    let cell = screen.text_cell()?;
    let inked: Vec<bool> = (0..TEXT_ROWS)
        .flat_map(|r| (0..TEXT_COLS).map(move |c| (r, c)))
        .map(|(r, c)| screen.cell_inked(cell, c, r))
        .collect();
    let page = TEXT_COLS * TEXT_ROWS * 2;
    let row = TEXT_COLS * 2;
    let (mut best, mut best_score) = (0, 0);
    for origin in (0..=vram.len().checked_sub(page)?).step_by(row) {
        let score = inked
            .iter()
            .enumerate()
            .filter(|(i, ink)| {
                let o = origin + i * 2;
                text_cell_inked(vram[o], vram[o + 1]) == **ink
            })
            .count();
        if score > best_score {
            (best, best_score) = (origin, score);
        }
    }
    let text: Vec<String> = vram[best..best + page]
        .chunks_exact(row)
        .map(|r| {
            r.chunks_exact(2)
                .map(|c| cp437(c[0]))
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect();
    Some(text.join("\n"))
}

/// A running QEMU guest with a VGA display, driven over QMP. Killed on drop.
pub struct VgaGuest {
    child: Child,
    qmp: BufReader<UnixStream>,
    dir: PathBuf,
    pub started: Instant,
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl VgaGuest {
    /// Boots the built image (`out/vmlinuz`, `out/initrd.img`) with `append` as the kernel
    /// command line, a standard VGA card, no window, the serial line to a file, and `extra`
    /// QEMU arguments (devices).
    pub fn start(append: &str, extra: &[String]) -> VgaGuest {
        let out = crate::out_dir();
        let mut args = vec![
            "-kernel".to_owned(),
            out.join("vmlinuz").display().to_string(),
            "-initrd".to_owned(),
            out.join("initrd.img").display().to_string(),
            "-append".to_owned(),
            append.to_owned(),
        ];
        args.extend(extra.iter().cloned());
        Self::spawn(&args)
    }

    /// Boots whatever the firmware given in `args` finds (no kernel from QEMU): the UEFI path.
    pub fn start_firmware(args: &[String]) -> VgaGuest {
        Self::spawn(args)
    }

    fn spawn(args: &[String]) -> VgaGuest {
        let dir = std::env::temp_dir().join(format!(
            "sherd-vga-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("qmp.sock");
        // TCG: KVM guests hang on these machines. -no-reboot turns a guest reboot into an exit.
        let child = Command::new("qemu-system-x86_64")
            .args([
                "-machine",
                "q35",
                "-accel",
                "tcg",
                "-m",
                "512",
                "-no-reboot",
            ])
            .args(["-vga", "std", "-display", "none"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", sock.display()))
            .arg("-serial")
            .arg(format!("file:{}", dir.join("serial.txt").display()))
            .args(args)
            // Never the terminal of whoever runs the capture: QEMU changes its standard
            // streams' flags, and a terminal's streams share them. Its messages go to a file.
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu-stderr.txt")).expect("temp dir"))
            .spawn()
            .expect("qemu-system-x86_64 is needed: apt-get install qemu-system-x86");
        let mut g = VgaGuest {
            child,
            qmp: BufReader::new(Self::connect(&sock)),
            dir,
            started: Instant::now(),
        };
        let greeting = g.read_message();
        assert!(greeting.contains("\"QMP\""), "QMP greeting: {greeting}");
        g.execute("qmp_capabilities", "{}");
        g
    }

    fn connect(sock: &Path) -> UnixStream {
        let t0 = Instant::now();
        loop {
            match UnixStream::connect(sock) {
                Ok(s) => return s,
                Err(e) if t0.elapsed() > Duration::from_secs(30) => {
                    let said = sock
                        .parent()
                        .and_then(|d| std::fs::read_to_string(d.join("qemu-stderr.txt")).ok())
                        .unwrap_or_default();
                    panic!(
                        "QEMU's QMP socket {}: {e}; QEMU said: {said}",
                        sock.display()
                    )
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// One QMP message (a line of JSON) that is not an asynchronous event.
    fn read_message(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = self.qmp.read_line(&mut line).expect("reading QMP");
            assert!(n > 0, "QEMU closed its QMP socket (the guest exited?)");
            // Events come as `{"event": ...}` or, with a timestamp first, `{"timestamp": ...`.
            if !line.starts_with("{\"event\"") && !line.starts_with("{\"timestamp\"") {
                return line;
            }
        }
    }

    /// Runs a QMP command and returns its answer; panics on an error answer.
    fn execute(&mut self, command: &str, arguments: &str) -> String {
        let msg = format!(
            "{{\"execute\": {}, \"arguments\": {arguments}}}\n",
            json_str(command)
        );
        let s = self.qmp.get_mut();
        s.write_all(msg.as_bytes()).expect("writing QMP");
        s.flush().unwrap();
        let answer = self.read_message();
        assert!(
            answer.starts_with("{\"return\""),
            "QMP {command} {arguments}: {answer}"
        );
        answer
    }

    /// Presses and releases one key on the emulated keyboard, by QEMU's key name (`qcode`):
    /// `g`, `e`, `1`, `ret`, `tab`, `esc`, `spc`, `up`, ... A combination is joined by `-`:
    /// `shift-g`.
    pub fn sendkey(&mut self, key: &str) {
        let keys: Vec<String> = key
            .split('-')
            .map(|k| format!("{{\"type\": \"qcode\", \"data\": {}}}", json_str(k)))
            .collect();
        self.execute("send-key", &format!("{{\"keys\": [{}]}}", keys.join(", ")));
    }

    /// The screen as it is now.
    pub fn screendump(&mut self) -> Screen {
        let f = self.dir.join("screen.ppm");
        let _ = std::fs::remove_file(&f);
        self.execute(
            "screendump",
            &format!("{{\"filename\": {}}}", json_str(&f.display().to_string())),
        );
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        Screen::from_ppm(&data).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
    }

    /// Guest physical memory.
    pub fn read_memory(&mut self, addr: u64, len: usize) -> Vec<u8> {
        let f = self.dir.join("memory.bin");
        let _ = std::fs::remove_file(&f);
        self.execute(
            "pmemsave",
            &format!(
                "{{\"val\": {addr}, \"size\": {len}, \"filename\": {}}}",
                json_str(&f.display().to_string())
            ),
        );
        std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()))
    }

    /// The text on the screen, one line per row, when the display is in VGA text mode;
    /// `None` on a framebuffer.
    pub fn text(&mut self) -> Option<String> {
        let screen = self.screendump();
        screen.text_cell()?;
        let vram = self.read_memory(TEXT_BUFFER, TEXT_BUFFER_LEN);
        // The buffer is read after the picture: take it again if the screen moved meanwhile.
        let again = self.screendump();
        visible_text(&vram, &again)
    }

    /// What the kernel printed on the serial line so far.
    pub fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("serial.txt")).unwrap_or_default())
            .into_owned()
    }

    fn check_running(&mut self, what: &str) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!(
                "QEMU exited ({st}) while waiting for {what}; serial:\n{}",
                self.serial()
            );
        }
    }

    /// Waits until two pictures taken half a second apart are identical, and returns it.
    pub fn wait_stable(&mut self, timeout: Duration) -> Screen {
        let t0 = Instant::now();
        let mut prev = self.screendump();
        loop {
            thread::sleep(Duration::from_millis(500));
            let cur = self.screendump();
            if cur == prev {
                return cur;
            }
            self.check_running("a stable screen");
            assert!(
                t0.elapsed() < timeout,
                "the screen kept changing for {timeout:?}"
            );
            prev = cur;
        }
    }

    /// Waits until the screen differs from `from`, then until it is stable again.
    pub fn wait_for_change(&mut self, from: &Screen, timeout: Duration) -> Screen {
        let t0 = Instant::now();
        while self.screendump() == *from {
            self.check_running("the screen to change");
            assert!(
                t0.elapsed() < timeout,
                "the screen did not change within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(250));
        }
        self.wait_stable(timeout.saturating_sub(t0.elapsed()))
    }

    /// Waits until the picture satisfies `ok` (`what` says what that means, for the panic
    /// message), then until it is stable; returns the stable picture.
    pub fn wait_for_picture(
        &mut self,
        what: &str,
        ok: impl Fn(&Screen) -> bool,
        timeout: Duration,
    ) -> Screen {
        let t0 = Instant::now();
        loop {
            if ok(&self.screendump()) {
                let s = self.wait_stable(timeout.saturating_sub(t0.elapsed()));
                if ok(&s) {
                    return s;
                }
            }
            self.check_running(what);
            assert!(
                t0.elapsed() < timeout,
                "no {what} within {timeout:?}; serial:\n{}",
                self.serial()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// On a framebuffer console: waits until the screen, read with `font`, shows any of `texts`
    /// and is stable; returns its text.
    pub fn wait_for_fb_text(&mut self, font: &Font, texts: &[&str], timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            let text = font.read(&self.screendump());
            if texts.iter().any(|t| text.contains(t)) {
                let s = self.wait_stable(timeout.saturating_sub(t0.elapsed()));
                return font.read(&s);
            }
            self.check_running(&format!("the screen to show one of {texts:?}"));
            assert!(
                t0.elapsed() < timeout,
                "the screen did not show any of {texts:?} within {timeout:?}:\n{text}\n\
                 --- serial ---\n{}",
                self.serial()
            );
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// In text mode: waits until the screen shows any of `texts` and is stable; returns its text.
    /// (The display starts in a graphics mode; on a framebuffer console this times out.)
    pub fn wait_for_text(&mut self, texts: &[&str], timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            // Before the firmware sets text mode the display is in a graphics mode: wait.
            let text = self.text().unwrap_or_else(|| {
                "(the display is not in VGA text mode; on a framebuffer, use wait_for_picture)"
                    .into()
            });
            if texts.iter().any(|t| text.contains(t)) {
                self.wait_stable(timeout.saturating_sub(t0.elapsed()));
                return self.text().unwrap();
            }
            self.check_running(&format!("the screen to show one of {texts:?}"));
            assert!(
                t0.elapsed() < timeout,
                "the screen did not show any of {texts:?} within {timeout:?}:\n{text}\n\
                 --- serial ---\n{}",
                self.serial()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Writes the screen as it is now to `path` as PNG; returns the picture and the file's size.
    pub fn screendump_png(&mut self, path: &Path) -> (Screen, usize) {
        let screen = self.screendump();
        let png = screen.png();
        std::fs::write(path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (screen, png.len())
    }
}

impl Drop for VgaGuest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ppm(w: usize, h: usize, px: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
        let mut d = format!("P6\n# comment\n{w} {h}\n255\n").into_bytes();
        for y in 0..h {
            for x in 0..w {
                d.extend(px(x, y));
            }
        }
        d
    }

    fn decode(png_bytes: &[u8]) -> (png::OutputInfo, Vec<u8>, Option<Vec<u8>>) {
        let mut r = png::Decoder::new(std::io::Cursor::new(png_bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        let palette = r.info().palette.as_ref().map(|p| p.to_vec());
        (info, buf, palette)
    }

    #[test]
    fn ppm_to_indexed_png_keeps_every_pixel() {
        let colours = [[0, 0, 0], [0xa8, 0xa8, 0xa8], [0xff, 0xff, 0xff]];
        let data = ppm(13, 5, |x, y| colours[(x * 7 + y) % 3]);
        let s = Screen::from_ppm(&data).unwrap();
        assert_eq!((s.width, s.height), (13, 5));
        let (info, buf, palette) = decode(&s.png());
        assert_eq!(info.color_type, png::ColorType::Indexed);
        assert_eq!(info.bit_depth, png::BitDepth::Two);
        let palette = palette.unwrap();
        let stride = info.line_size;
        for y in 0..5 {
            for x in 0..13 {
                let i = (buf[y * stride + x / 4] >> (6 - 2 * (x % 4))) & 3;
                let c = &palette[i as usize * 3..i as usize * 3 + 3];
                assert_eq!(c, colours[(x * 7 + y) % 3], "pixel {x},{y}");
            }
        }
    }

    #[test]
    fn many_colours_are_rgb() {
        let s = Screen::from_ppm(&ppm(40, 20, |x, y| [x as u8, y as u8, 7])).unwrap();
        let (info, buf, _) = decode(&s.png());
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(buf, s.rgb);
    }

    #[test]
    fn refuses_bad_ppm() {
        assert!(Screen::from_ppm(b"P5\n1 1\n255\n\0").is_err());
        assert!(Screen::from_ppm(b"P6\n2 2\n255\n\0\0\0").is_err());
        assert!(Screen::from_ppm(b"P6\n2").is_err());
    }

    #[test]
    fn cp437_table_is_complete() {
        assert_eq!(CP437_LOW.chars().count(), 32);
        assert_eq!(CP437_HIGH.chars().count(), 129);
        assert_eq!(cp437(b'A'), 'A');
        assert_eq!(cp437(0xb3), '│');
        assert_eq!(cp437(0xc4), '─');
        assert_eq!(cp437(0xda), '┌');
        assert_eq!(cp437(0xd9), '┘');
        assert_eq!(cp437(0xfe), '■');
    }

    #[test]
    fn finds_the_scrolled_text_window() {
        // A 720x400 picture whose row 0 has ink in columns 0..3 only; the buffer holds a stale
        // page at origin 0 and the visible one two rows further.
        let screen = Screen::from_ppm(&ppm(720, 400, |x, y| {
            if y < 16 && x < 27 && (x % 9 == 4) {
                [0xa8; 3]
            } else {
                [0; 3]
            }
        }))
        .unwrap();
        let mut vram = vec![0u8; TEXT_BUFFER_LEN];
        for (i, c) in vram.chunks_exact_mut(2).enumerate() {
            c[0] = if i % 80 < 40 { b'x' } else { b' ' };
            c[1] = 0x07;
        }
        let origin = 2 * 160;
        for (i, c) in vram[origin..origin + 4000].chunks_exact_mut(2).enumerate() {
            c[0] = if i < 3 { b"abc"[i] } else { b' ' };
        }
        assert_eq!(
            visible_text(&vram, &screen).unwrap().lines().next(),
            Some("abc")
        );
    }
}
