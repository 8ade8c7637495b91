//! The guest's devices: on I/O ports a 16550A UART (COM1, the kernel
//! console) with its interrupt through an irqfd, a CMOS RTC and the i8042
//! reset line (every other port reads as a floating bus); in the MMIO gap
//! the virtio-mmio transports (`virtio`), the agent channel among them.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use vm_superio::serial::SerialEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::layout::*;
use super::virtio::console::AgentChannel;
use super::virtio::mmio::MmioTransport;
use super::virtio::Interrupt;

/// Why the guest asked to stop. (The workload's exit status comes over the
/// agent channel, see `channel::FrameSink`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestStop {
    /// The guest pulsed the reset line through the i8042 (reboot or panic).
    I8042Reset,
}

/// An interrupt line: an eventfd registered with KVM_IRQFD.
pub struct IrqLine(pub EventFd);

impl Trigger for IrqLine {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Most recent console bytes kept for the error report.
const CONSOLE_TAIL_BYTES: usize = 16 * 1024;
/// Console output is written to the log a line (or this many bytes) at a time.
const CONSOLE_FLUSH_BYTES: usize = 4096;

/// COM1's output: the optional console log plus an in-memory tail.
pub struct ConsoleSink {
    log: Option<File>,
    pending: Vec<u8>,
    tail: VecDeque<u8>,
    /// Bytes written to the log so far; it stops at [`CONSOLE_LOG_MAX`].
    logged: u64,
}

/// The most a guest may write to the console log on the host's disk: a
/// guest root process can write the UART without end, and the log is the
/// host's file. The in-memory tail keeps the latest lines regardless.
pub const CONSOLE_LOG_MAX: u64 = 8 << 20;

impl ConsoleSink {
    pub fn new(log: Option<File>) -> Self {
        ConsoleSink {
            log,
            pending: Vec::new(),
            tail: VecDeque::new(),
            logged: 0,
        }
    }

    /// The last `lines` complete or partial lines of console output.
    pub fn last_lines(&self, lines: usize) -> String {
        let text: Vec<u8> = self.tail.iter().copied().collect();
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Write for ConsoleSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            if self.tail.len() == CONSOLE_TAIL_BYTES {
                self.tail.pop_front();
            }
            self.tail.push_back(b);
        }
        if self.log.is_some() {
            self.pending.extend_from_slice(buf);
            if buf.contains(&b'\n') || self.pending.len() >= CONSOLE_FLUSH_BYTES {
                self.flush()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(log) = self.log.as_mut() {
            if !self.pending.is_empty() && self.logged < CONSOLE_LOG_MAX {
                let room = (CONSOLE_LOG_MAX - self.logged) as usize;
                let n = self.pending.len().min(room);
                // A failing log must not stop the guest: the bytes are dropped.
                let _ = log.write_all(&self.pending[..n]);
                self.logged += n as u64;
                if self.logged >= CONSOLE_LOG_MAX {
                    let _ = log.write_all(
                        b"\nvessel-vmm: console log full (8 MiB); the rest of the guest's console is dropped\n",
                    );
                }
            }
            self.pending.clear();
        }
        Ok(())
    }
}

pub type ConsoleSerial = Serial<IrqLine, vm_superio::serial::NoEvents, ConsoleSink>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking vCPU thread ends the VMM anyway; keep serving the data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// IIR bit 0 set means "no interrupt pending".
const UART_IIR_NO_INT: u8 = 0x01;

/// Re-raises the UART's interrupt if one is still pending (the guest has not
/// read IIR since it was raised). The line is an edge through the IOAPIC, and
/// an edge that arrives while the guest has the pin masked (e.g. while it
/// moves the IRQ to another vCPU) is lost; a real 16550 keeps its output
/// asserted instead. A spare edge is harmless: the 8250 driver checks IIR.
fn kick_if_stale<EV: SerialEvents, W: Write>(serial: &Serial<IrqLine, EV, W>) {
    if serial.state().interrupt_identification & UART_IIR_NO_INT == 0 {
        let _ = serial.interrupt_evt().trigger();
    }
}

/// CMOS RTC (ports 0x70/0x71): the host's clock in UTC, BCD, 24-hour mode,
/// never "update in progress", so the guest reads the time at once.
pub struct Cmos {
    index: u8,
    ram: [u8; 128],
}

const RTC_SECONDS: u8 = 0x00;
const RTC_MINUTES: u8 = 0x02;
const RTC_HOURS: u8 = 0x04;
const RTC_WEEKDAY: u8 = 0x06;
const RTC_DAY: u8 = 0x07;
const RTC_MONTH: u8 = 0x08;
const RTC_YEAR: u8 = 0x09;
const RTC_REG_A: u8 = 0x0a;
const RTC_REG_B: u8 = 0x0b;
const RTC_REG_C: u8 = 0x0c;
const RTC_REG_D: u8 = 0x0d;
const RTC_CENTURY: u8 = 0x32;
/// Register A: 32.768 kHz divider, 1024 Hz rate, UIP (bit 7) clear.
const RTC_REG_A_DEFAULT: u8 = 0x26;
/// Register B bit 1: 24-hour mode; bit 2: binary (else BCD).
const RTC_REG_B_24H: u8 = 0x02;
const RTC_REG_B_BINARY: u8 = 0x04;
/// Register D bit 7: valid RAM and time.
const RTC_REG_D_VRT: u8 = 0x80;

impl Default for Cmos {
    fn default() -> Self {
        let mut ram = [0u8; 128];
        ram[RTC_REG_A as usize] = RTC_REG_A_DEFAULT;
        ram[RTC_REG_B as usize] = RTC_REG_B_24H;
        Cmos { index: 0, ram }
    }
}

impl Cmos {
    fn read_register(&self, reg: u8, now_unix: u64) -> u8 {
        let t = vessel_common::time::civil_time(now_unix.min(i64::MAX as u64) as i64);
        let (year, month, day, weekday, h, m, s) = (
            t.year.max(0) as u64,
            t.month,
            t.day,
            t.weekday,
            t.hour,
            t.minute,
            t.second,
        );
        let binary = self.ram[RTC_REG_B as usize] & RTC_REG_B_BINARY != 0;
        let enc = |v: u8| {
            if binary {
                v
            } else {
                ((v / 10) << 4) | (v % 10)
            }
        };
        match reg {
            RTC_SECONDS => enc(s),
            RTC_MINUTES => enc(m),
            RTC_HOURS => enc(h),
            RTC_WEEKDAY => enc(weekday + 1),
            RTC_DAY => enc(day),
            RTC_MONTH => enc(month),
            RTC_YEAR => enc((year % 100) as u8),
            RTC_CENTURY => enc((year / 100) as u8),
            RTC_REG_A => self.ram[RTC_REG_A as usize] & 0x7f,
            RTC_REG_B => self.ram[RTC_REG_B as usize] | RTC_REG_B_24H,
            RTC_REG_C => 0,
            RTC_REG_D => RTC_REG_D_VRT,
            r => self.ram[r as usize & 0x7f],
        }
    }

    pub fn read(&mut self, port: u16) -> u8 {
        if port != CMOS_DATA_PORT {
            return 0xff;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.read_register(self.index, now)
    }

    pub fn write(&mut self, port: u16, value: u8) {
        match port {
            // Bit 7 is the NMI mask, not part of the index.
            CMOS_INDEX_PORT => self.index = value & 0x7f,
            CMOS_DATA_PORT => self.ram[self.index as usize] = value,
            _ => {}
        }
    }
}

/// All devices, shared by the vCPU threads.
pub struct Devices {
    pub com1: Mutex<ConsoleSerial>,
    /// The agent channel (virtio-console in slot 0).
    pub agent: Arc<AgentChannel>,
    cmos: Mutex<Cmos>,
    virtio: Vec<Mutex<MmioTransport>>,
    virtio_interrupts: Vec<Arc<Interrupt>>,
}

/// i8042 command: pulse the CPU reset line.
const I8042_CMD_RESET: u8 = 0xfe;

impl Devices {
    pub fn new(
        com1_irq: EventFd,
        console: ConsoleSink,
        agent: Arc<AgentChannel>,
        virtio: Vec<MmioTransport>,
    ) -> Self {
        Devices {
            com1: Mutex::new(Serial::new(IrqLine(com1_irq), console)),
            agent,
            cmos: Mutex::new(Cmos::default()),
            virtio_interrupts: virtio.iter().map(|t| t.interrupt().clone()).collect(),
            virtio: virtio.into_iter().map(Mutex::new).collect(),
        }
    }

    fn transport(&self, addr: u64) -> Option<MutexGuard<'_, MmioTransport>> {
        // Few slots, each with a fixed window: a scan is cheap.
        self.virtio.iter().map(lock).find(|t| t.contains(addr))
    }

    /// A guest MMIO read; addresses no device answers read as zeros.
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        match self.transport(addr) {
            Some(t) => t.read(addr, data),
            None => data.fill(0),
        }
    }

    /// A guest MMIO write; an error means a device could not start.
    pub fn mmio_write(&self, addr: u64, data: &[u8]) -> Result<(), String> {
        match self.transport(addr) {
            Some(mut t) => t.write(addr, data),
            None => Ok(()),
        }
    }

    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        let value = match port {
            p if (COM1_PORT..COM1_PORT + SERIAL_PORT_LEN).contains(&p) => {
                lock(&self.com1).read((p - COM1_PORT) as u8)
            }
            CMOS_INDEX_PORT | CMOS_DATA_PORT => lock(&self.cmos).read(port),
            // No keyboard data pending, controller idle.
            I8042_DATA_PORT | I8042_COMMAND_PORT => 0,
            _ => 0xff,
        };
        data.fill(0xff);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    /// Handles a port write; returns what the guest asked for if it asks to stop.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> Option<GuestStop> {
        let &value = data.first()?;
        match port {
            p if (COM1_PORT..COM1_PORT + SERIAL_PORT_LEN).contains(&p) => {
                // Output errors are already accounted for by the sink.
                let _ = lock(&self.com1).write((p - COM1_PORT) as u8, value);
            }
            CMOS_INDEX_PORT | CMOS_DATA_PORT => lock(&self.cmos).write(port, value),
            I8042_COMMAND_PORT if value == I8042_CMD_RESET => return Some(GuestStop::I8042Reset),
            _ => {}
        }
        None
    }

    /// See [`kick_if_stale`]: called periodically so a lost edge costs a
    /// short delay instead of a hung console or channel.
    pub fn kick_stale_interrupts(&self) {
        kick_if_stale(&lock(&self.com1));
        for interrupt in &self.virtio_interrupts {
            interrupt.kick_if_pending();
        }
    }

    /// Flushes the console log and returns its last lines.
    pub fn console_tail(&self, lines: usize) -> String {
        let mut com1 = lock(&self.com1);
        let _ = com1.writer_mut().flush();
        com1.writer().last_lines(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmos_reports_bcd_time_and_no_update_in_progress() {
        let c = Cmos::default();
        let t = 951_827_696;
        assert_eq!(c.read_register(RTC_HOURS, t), 0x12);
        assert_eq!(c.read_register(RTC_MINUTES, t), 0x34);
        assert_eq!(c.read_register(RTC_SECONDS, t), 0x56);
        assert_eq!(c.read_register(RTC_YEAR, t), 0x00);
        assert_eq!(c.read_register(RTC_CENTURY, t), 0x20);
        assert_eq!(c.read_register(RTC_MONTH, t), 0x02);
        assert_eq!(c.read_register(RTC_REG_A, t) & 0x80, 0);
        assert_eq!(c.read_register(RTC_REG_D, t), RTC_REG_D_VRT);
        let mut c = Cmos::default();
        c.write(CMOS_INDEX_PORT, 0x80 | RTC_REG_B); // with the NMI-mask bit
        c.write(CMOS_DATA_PORT, RTC_REG_B_24H | RTC_REG_B_BINARY);
        assert_eq!(c.read_register(RTC_MINUTES, t), 34);
    }

    #[test]
    fn console_log_stops_at_its_cap() {
        let path = std::env::temp_dir().join(format!("vessel-console-{}", std::process::id()));
        let mut s = ConsoleSink::new(Some(File::create(&path).unwrap()));
        let line = vec![b'x'; 4095];
        for _ in 0..(CONSOLE_LOG_MAX / 4096 + 100) {
            s.write_all(&line).unwrap();
            s.write_all(b"\n").unwrap();
        }
        s.flush().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(
            (CONSOLE_LOG_MAX..CONSOLE_LOG_MAX + 200).contains(&len),
            "{len}"
        );
        assert!(s.last_lines(1).starts_with("xxx"));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn console_sink_keeps_the_last_lines() {
        let mut s = ConsoleSink::new(None);
        s.write_all(b"one\ntwo\nthree\nfour").unwrap();
        assert_eq!(s.last_lines(2), "three\nfour");
        let big = vec![b'x'; CONSOLE_TAIL_BYTES * 2];
        s.write_all(&big).unwrap();
        assert_eq!(s.tail.len(), CONSOLE_TAIL_BYTES);
    }

    #[test]
    fn reset_stops_the_guest_and_other_ports_float() {
        let d = Devices::new(
            EventFd::new(0).unwrap(),
            ConsoleSink::new(None),
            AgentChannel::new(),
            Vec::new(),
        );
        assert_eq!(
            d.pio_write(I8042_COMMAND_PORT, &[0xfe]),
            Some(GuestStop::I8042Reset)
        );
        // The old exit-status ports are gone: a write there stops nothing.
        assert_eq!(d.pio_write(0x501, &[3]), None);
        assert_eq!(d.pio_write(0x80, &[1]), None);
        let mut b = [0u8; 2];
        d.pio_read(0xcfc, &mut b);
        assert_eq!(b, [0xff, 0xff]);
        let mut m = [9u8; 4];
        d.mmio_read(0xd000_0000, &mut m);
        assert_eq!(m, [0; 4]);
    }
}
