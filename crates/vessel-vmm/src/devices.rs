//! The legacy I/O port devices: two 16550A UARTs (COM1 kernel console, COM2
//! agent channel) with interrupts through irqfds, a CMOS RTC, the i8042 reset
//! line and the exit-status ports. Every other port reads as a floating bus.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use vm_superio::serial::SerialEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::channel::FrameSink;
use super::layout::*;

/// Why the guest asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestStop {
    /// The agent wrote the workload's exit code to port 0x501.
    ExitCode(u8),
    /// The agent wrote the signal that killed the workload to port 0x502.
    Signal(u8),
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

/// Wakes the host writer when the guest has drained COM2's receive FIFO.
pub struct RoomSignal(Arc<Condvar>);

impl SerialEvents for RoomSignal {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        self.0.notify_all();
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
}

impl ConsoleSink {
    pub fn new(log: Option<File>) -> Self {
        ConsoleSink {
            log,
            pending: Vec::new(),
            tail: VecDeque::new(),
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
            if !self.pending.is_empty() {
                // A failing log must not stop the guest: the bytes are dropped.
                let _ = log.write_all(&self.pending);
                self.pending.clear();
            }
        }
        Ok(())
    }
}

pub type ConsoleSerial = Serial<IrqLine, vm_superio::serial::NoEvents, ConsoleSink>;
pub type ChannelSerial = Serial<IrqLine, RoomSignal, FrameSink>;

/// COM2 as seen from the host: the UART plus what lets writers wait until
/// the guest driver is listening and there is room in the 64-byte FIFO.
pub struct ChannelPort {
    inner: Mutex<ChannelInner>,
    room: Arc<Condvar>,
    /// Held for a whole frame so frames from different threads never interleave.
    frame_lock: Mutex<()>,
}

struct ChannelInner {
    serial: ChannelSerial,
    /// The guest has the port open and listens: data terminal ready (MCR DTR,
    /// raised when the tty is opened) and the receive interrupt enabled (IER
    /// RDI). Before that, the 8250 driver's probe and start-up would drain and
    /// drop whatever was queued (its probe briefly sets IER to 0x0f, so IER
    /// alone is not enough).
    rx_enabled: bool,
    /// The guest sent its first frame. The agent sends an empty 'O' frame once
    /// its end of the port is in raw mode: bytes arriving before that would be
    /// cooked (echoed, ^D as EOF) by the guest's tty layer.
    guest_ready: bool,
}

/// UART registers and bits the channel watches.
const UART_IER: u8 = 1;
const UART_LCR: u8 = 3;
const UART_MCR: u8 = 4;
const UART_IER_RDI: u8 = 0x01;
const UART_MCR_DTR: u8 = 0x01;
const UART_MCR_LOOP: u8 = 0x10;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking vCPU thread ends the VMM anyway; keep serving the data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChannelPort {
    pub fn new(irq: EventFd, sink: FrameSink) -> Self {
        let room = Arc::new(Condvar::new());
        let serial = Serial::with_events(IrqLine(irq), RoomSignal(room.clone()), sink);
        ChannelPort {
            inner: Mutex::new(ChannelInner {
                serial,
                rx_enabled: false,
                guest_ready: false,
            }),
            room,
            frame_lock: Mutex::new(()),
        }
    }

    /// The guest's agent is up: it has sent its first frame.
    pub fn guest_ready(&self) -> bool {
        lock(&self.inner).guest_ready
    }

    /// Queues `bytes` (one or more whole frames) for the guest, blocking until
    /// the guest listens and while the FIFO is full. Each enqueue raises the
    /// receive interrupt.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let _frame = lock(&self.frame_lock);
        let mut rest = bytes;
        let mut inner = lock(&self.inner);
        while !rest.is_empty() {
            while !(inner.rx_enabled && inner.guest_ready) || inner.serial.fifo_capacity() == 0 {
                inner = self.room.wait(inner).unwrap_or_else(|p| p.into_inner());
            }
            let n = inner
                .serial
                .enqueue_raw_bytes(rest)
                .map_err(|e| io::Error::other(format!("COM2 receive FIFO: {e:?}")))?;
            rest = &rest[n..];
        }
        Ok(())
    }

    fn read(&self, offset: u8) -> u8 {
        lock(&self.inner).serial.read(offset)
    }

    fn kick_if_stale(&self) {
        let inner = lock(&self.inner);
        kick_if_stale(&inner.serial);
    }

    fn write(&self, offset: u8, value: u8) {
        let mut inner = lock(&self.inner);
        let _ = inner.serial.write(offset, value);
        if !inner.guest_ready && inner.serial.writer().frames_seen() > 0 {
            inner.guest_ready = true;
            self.room.notify_all();
        }
        if matches!(offset, UART_IER | UART_LCR | UART_MCR) {
            // With DLAB set, offset 1 is the divisor, so ask the UART itself.
            let st = inner.serial.state();
            let enabled = st.interrupt_enable & UART_IER_RDI != 0
                && st.modem_control & (UART_MCR_DTR | UART_MCR_LOOP) == UART_MCR_DTR;
            if enabled != inner.rx_enabled {
                inner.rx_enabled = enabled;
                self.room.notify_all();
            }
        }
    }
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

/// All port I/O devices, shared by the vCPU threads.
pub struct Devices {
    pub com1: Mutex<ConsoleSerial>,
    pub com2: Arc<ChannelPort>,
    cmos: Mutex<Cmos>,
}

/// i8042 command: pulse the CPU reset line.
const I8042_CMD_RESET: u8 = 0xfe;

impl Devices {
    pub fn new(com1_irq: EventFd, console: ConsoleSink, com2: Arc<ChannelPort>) -> Self {
        Devices {
            com1: Mutex::new(Serial::new(IrqLine(com1_irq), console)),
            com2,
            cmos: Mutex::new(Cmos::default()),
        }
    }

    pub fn pio_read(&self, port: u16, data: &mut [u8]) {
        let value = match port {
            p if (COM1_PORT..COM1_PORT + SERIAL_PORT_LEN).contains(&p) => {
                lock(&self.com1).read((p - COM1_PORT) as u8)
            }
            p if (COM2_PORT..COM2_PORT + SERIAL_PORT_LEN).contains(&p) => {
                self.com2.read((p - COM2_PORT) as u8)
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
            p if (COM2_PORT..COM2_PORT + SERIAL_PORT_LEN).contains(&p) => {
                self.com2.write((p - COM2_PORT) as u8, value);
            }
            CMOS_INDEX_PORT | CMOS_DATA_PORT => lock(&self.cmos).write(port, value),
            I8042_COMMAND_PORT if value == I8042_CMD_RESET => return Some(GuestStop::I8042Reset),
            EXIT_CODE_PORT => return Some(GuestStop::ExitCode(value)),
            EXIT_SIGNAL_PORT => return Some(GuestStop::Signal(value)),
            _ => {}
        }
        None
    }

    /// See [`kick_if_stale`]: called periodically so a lost edge costs a
    /// short delay instead of a hung console or channel.
    pub fn kick_stale_interrupts(&self) {
        kick_if_stale(&lock(&self.com1));
        self.com2.kick_if_stale();
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
    fn console_sink_keeps_the_last_lines() {
        let mut s = ConsoleSink::new(None);
        s.write_all(b"one\ntwo\nthree\nfour").unwrap();
        assert_eq!(s.last_lines(2), "three\nfour");
        let big = vec![b'x'; CONSOLE_TAIL_BYTES * 2];
        s.write_all(&big).unwrap();
        assert_eq!(s.tail.len(), CONSOLE_TAIL_BYTES);
    }

    #[test]
    fn exit_ports_and_reset_stop_the_guest() {
        let com2 = Arc::new(ChannelPort::new(
            EventFd::new(0).unwrap(),
            FrameSink::discard(),
        ));
        let d = Devices::new(
            EventFd::new(0).unwrap(),
            ConsoleSink::new(None),
            com2.clone(),
        );
        assert_eq!(
            d.pio_write(EXIT_CODE_PORT, &[3]),
            Some(GuestStop::ExitCode(3))
        );
        assert_eq!(
            d.pio_write(EXIT_SIGNAL_PORT, &[15]),
            Some(GuestStop::Signal(15))
        );
        assert_eq!(
            d.pio_write(I8042_COMMAND_PORT, &[0xfe]),
            Some(GuestStop::I8042Reset)
        );
        assert_eq!(d.pio_write(0x80, &[1]), None);
        let mut b = [0u8; 2];
        d.pio_read(0xcfc, &mut b);
        assert_eq!(b, [0xff, 0xff]);
        // Host input waits until the guest enables the receive interrupt, then
        // lands in COM2's receive buffer: LSR data-ready, then the byte.
        let sender = {
            let com2 = com2.clone();
            std::thread::spawn(move || com2.send(&[b'I', 1, b'x']).unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut lsr = [0u8];
        d.pio_read(COM2_PORT + 5, &mut lsr);
        assert_eq!(lsr[0] & 1, 0, "nothing queued before the guest listens");
        assert_eq!(d.pio_write(COM2_PORT + 1, &[UART_IER_RDI]), None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        d.pio_read(COM2_PORT + 5, &mut lsr);
        assert_eq!(
            lsr[0] & 1,
            0,
            "the receive interrupt alone (driver probe) is not enough"
        );
        assert_eq!(d.pio_write(COM2_PORT + 4, &[UART_MCR_DTR | 0x08]), None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        d.pio_read(COM2_PORT + 5, &mut lsr);
        assert_eq!(lsr[0] & 1, 0, "nothing before the guest's ready frame");
        for b in [b'O', 0] {
            assert_eq!(d.pio_write(COM2_PORT, &[b]), None);
        }
        sender.join().unwrap();
        d.pio_read(COM2_PORT + 5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1);
        // The receive interrupt is pending and unread: a kick re-raises it.
        let before = com2
            .inner
            .lock()
            .unwrap()
            .serial
            .interrupt_evt()
            .0
            .read()
            .unwrap();
        assert!(before >= 1);
        d.kick_stale_interrupts();
        assert_eq!(
            com2.inner
                .lock()
                .unwrap()
                .serial
                .interrupt_evt()
                .0
                .read()
                .unwrap(),
            1
        );
        let mut byte = [0u8];
        d.pio_read(COM2_PORT, &mut byte);
        assert_eq!(byte[0], b'I');
    }
}
