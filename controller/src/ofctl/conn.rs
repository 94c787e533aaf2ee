//! A short-lived, blocking OpenFlow 1.3 connection to a switch: HELLO exchange with a
//! version check, requests matched to replies by xid, multipart reassembly, echo replies
//! while waiting, barriers after modifications, and one deadline per operation.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fuxi_openflow::msg::{Hello, MultipartReply, MultipartRequest};
use fuxi_openflow::{Framer, Header, Message};

/// What can go wrong talking to a switch.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{target}: connection failed ({source})")]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}: invalid target (use tcp:HOST:PORT, unix:PATH or a bridge name)")]
    BadTarget(String),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("timeout waiting for the switch")]
    Timeout,
    #[error("connection closed by the switch")]
    Closed,
    #[error("version negotiation failed (we support OpenFlow 1.3 only): {0}")]
    Version(String),
    #[error("undecodable message from the switch: {0}")]
    Decode(String),
    /// The switch refused a request: the ERROR message with its xid.
    #[error("{}", crate::ofctl::format::format_error(*xid, error))]
    Refused {
        xid: u32,
        error: fuxi_openflow::msg::ErrorMsg,
    },
}

/// Where the switch listens.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Target {
    Tcp(String),
    Unix(PathBuf),
}

/// The run directory where a bare bridge name is looked up (`<rundir>/<bridge>.mgmt`).
pub const DEFAULT_RUNDIR: &str = "/var/run/openvswitch";

impl Target {
    /// `tcp:HOST[:PORT]` (port 6653 by default), `unix:PATH`, or a bridge name `BR`, which
    /// means `unix:<rundir>/BR.mgmt` (Open vSwitch's convention; fuxi-switchd keeps it).
    pub fn parse(s: &str, rundir: &Path) -> Result<Target, ConnError> {
        if let Some(rest) = s.strip_prefix("tcp:") {
            if rest.is_empty() {
                return Err(ConnError::BadTarget(s.into()));
            }
            // tcp:[v6]:port, tcp:host:port, tcp:host
            let has_port = if rest.starts_with('[') {
                rest.contains("]:")
            } else {
                rest.matches(':').count() == 1
            };
            let addr = if has_port {
                rest.to_string()
            } else if rest.contains(':') && !rest.starts_with('[') {
                format!("[{rest}]:6653")
            } else {
                format!("{rest}:6653")
            };
            Ok(Target::Tcp(addr))
        } else if let Some(p) = s.strip_prefix("unix:") {
            Ok(Target::Unix(PathBuf::from(p)))
        } else if s.contains(':') || s.is_empty() {
            Err(ConnError::BadTarget(s.into()))
        } else if s.contains('/') {
            Ok(Target::Unix(PathBuf::from(s)))
        } else {
            Ok(Target::Unix(rundir.join(format!("{s}.mgmt"))))
        }
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(d),
            Stream::Unix(s) => s.set_read_timeout(d),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// An open OpenFlow 1.3 connection.
pub struct Conn {
    stream: Stream,
    framer: Framer,
    next_xid: u32,
    /// How long one operation may wait for the switch.
    pub timeout: Duration,
    /// Messages received while waiting for something else (async messages, for `monitor`).
    pub stash: Vec<(Header, Message)>,
    out: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("next_xid", &self.next_xid)
            .finish()
    }
}

impl Conn {
    /// Connects and exchanges HELLOs.
    pub fn open(target: &Target, timeout: Duration) -> Result<Conn, ConnError> {
        let name = match target {
            Target::Tcp(a) => format!("tcp:{a}"),
            Target::Unix(p) => format!("unix:{}", p.display()),
        };
        let connect_err = |source| ConnError::Connect {
            target: name.clone(),
            source,
        };
        let stream = match target {
            Target::Tcp(a) => {
                let addrs: Vec<_> = a.to_socket_addrs().map_err(connect_err)?.collect();
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                let mut s = None;
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(t) => {
                            s = Some(t);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = s.ok_or_else(|| connect_err(last))?;
                s.set_nodelay(true).ok();
                Stream::Tcp(s)
            }
            Target::Unix(p) => Stream::Unix(UnixStream::connect(p).map_err(connect_err)?),
        };
        let mut c = Conn {
            stream,
            framer: Framer::new(),
            next_xid: 1,
            timeout,
            stash: Vec::new(),
            out: Vec::new(),
        };
        c.hello()?;
        Ok(c)
    }

    fn hello(&mut self) -> Result<(), ConnError> {
        let xid = self.alloc_xid();
        self.send_with_xid(&Message::Hello(Hello::ofp13()), xid)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let (h, m) = self.recv_raw(deadline)?;
            match m {
                Message::Hello(hello) => {
                    return match hello.negotiate(h.version) {
                        Some(0x04) => Ok(()),
                        _ => Err(ConnError::Version(format!(
                            "peer HELLO has version {:#04x}",
                            h.version
                        ))),
                    };
                }
                Message::Error(e) => {
                    return Err(ConnError::Version(
                        crate::ofctl::format::format_error(h.xid, &e)
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_string(),
                    ));
                }
                other => self.stash.push((h, other)),
            }
        }
    }

    /// A fresh xid.
    pub fn alloc_xid(&mut self) -> u32 {
        let x = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        x
    }

    /// Sends `msg` with a fresh xid, returned.
    pub fn send(&mut self, msg: &Message) -> Result<u32, ConnError> {
        let xid = self.alloc_xid();
        self.send_with_xid(msg, xid)?;
        Ok(xid)
    }

    /// Queues `msg` (written on the next [`Conn::flush`] or when the buffer is large).
    pub fn queue(&mut self, msg: &Message) -> Result<u32, ConnError> {
        let xid = self.alloc_xid();
        msg.encode(xid, &mut self.out);
        if self.out.len() > 64 * 1024 {
            self.flush()?;
        }
        Ok(xid)
    }

    /// Writes what [`Conn::queue`] buffered.
    pub fn flush(&mut self) -> Result<(), ConnError> {
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            self.write_all_draining(&out)?;
        }
        Ok(())
    }

    fn send_with_xid(&mut self, msg: &Message, xid: u32) -> Result<(), ConnError> {
        self.flush()?;
        let bytes = msg.to_vec(xid);
        self.write_all_draining(&bytes)
    }

    /// Writes everything. A blocking write could deadlock against a switch whose own
    /// replies fill the socket, so writes are non-blocking and incoming bytes are read
    /// (and framed) whenever the socket would block.
    fn write_all_draining(&mut self, mut buf: &[u8]) -> Result<(), ConnError> {
        let deadline = Instant::now() + self.timeout;
        self.set_nonblocking(true)?;
        let r = (|| {
            while !buf.is_empty() {
                match self.stream.write(buf) {
                    Ok(0) => return Err(ConnError::Closed),
                    Ok(n) => buf = &buf[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(ConnError::Timeout);
                        }
                        if !self.read_some_nonblocking()? {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })();
        self.set_nonblocking(false)?;
        r
    }

    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// Reads what is there without blocking, into the framer. Whether anything was read.
    fn read_some_nonblocking(&mut self) -> Result<bool, ConnError> {
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => Err(ConnError::Closed),
            Ok(n) => {
                self.framer.push(&buf[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The next message, whatever it is (echo requests are answered here and not returned).
    fn recv_raw(&mut self, deadline: Instant) -> Result<(Header, Message), ConnError> {
        loop {
            match self.framer.next_message() {
                Ok(Some(Ok((h, Message::EchoRequest(data))))) => {
                    self.send_with_xid(&Message::EchoReply(data), h.xid)?;
                    continue;
                }
                Ok(Some(Ok(hm))) => return Ok(hm),
                Ok(Some(Err(e))) => return Err(ConnError::Decode(e.to_string())),
                Ok(None) => {}
                Err(e) => return Err(ConnError::Decode(e.0.to_string())),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ConnError::Timeout);
            }
            self.stream.set_read_timeout(Some(deadline - now))?;
            let mut buf = [0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ConnError::Closed),
                Ok(n) => self.framer.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ConnError::Timeout);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next message, waiting at most `wait` (`None`: forever). Stashed messages first.
    pub fn recv(&mut self, wait: Option<Duration>) -> Result<(Header, Message), ConnError> {
        if !self.stash.is_empty() {
            return Ok(self.stash.remove(0));
        }
        let deadline = match wait {
            Some(w) => Instant::now() + w,
            // Far enough to be "forever" for a CLI.
            None => Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600),
        };
        self.recv_raw(deadline)
    }

    /// Waits for the reply with `xid`. An ERROR with that xid is [`ConnError::Refused`];
    /// other messages are stashed.
    pub fn wait_reply(&mut self, xid: u32) -> Result<Message, ConnError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let (h, m) = self.recv_raw(deadline)?;
            if h.xid == xid {
                if let Message::Error(error) = m {
                    return Err(ConnError::Refused { xid, error });
                }
                return Ok(m);
            }
            if let Message::Error(error) = m {
                return Err(ConnError::Refused { xid: h.xid, error });
            }
            self.stash.push((h, m));
        }
    }

    /// Sends a request and returns its one reply.
    pub fn transact(&mut self, msg: &Message) -> Result<Message, ConnError> {
        let xid = self.send(msg)?;
        self.wait_reply(xid)
    }

    /// Sends a multipart request and returns the reassembled reply (and its xid).
    pub fn multipart(&mut self, req: MultipartRequest) -> Result<(u32, MultipartReply), ConnError> {
        let xid = self.send(&Message::MultipartRequest(req))?;
        let deadline = Instant::now() + self.timeout;
        let mut parts = Vec::new();
        loop {
            let (h, m) = self.recv_raw(deadline)?;
            match m {
                Message::MultipartReply(r) if h.xid == xid => {
                    let more = r.more();
                    parts.push(r);
                    if !more {
                        break;
                    }
                }
                Message::Error(error) => return Err(ConnError::Refused { xid: h.xid, error }),
                other => self.stash.push((h, other)),
            }
        }
        let whole =
            MultipartReply::reassemble(parts).map_err(|e| ConnError::Decode(e.to_string()))?;
        Ok((xid, whole))
    }

    /// Sends `msgs` (pipelined, no waiting in between), then a barrier, and waits for the
    /// barrier reply. The first ERROR answering any of them is returned as
    /// [`ConnError::Refused`] (after the barrier reply, so the switch is quiescent).
    pub fn mods_with_barrier(&mut self, msgs: &[Message]) -> Result<(), ConnError> {
        let mut first_xid = None;
        for m in msgs {
            let x = self.queue(m)?;
            first_xid.get_or_insert(x);
        }
        let bxid = self.queue(&Message::BarrierRequest)?;
        self.flush()?;
        let mut refused = None;
        // The deadline restarts with every message received: a big batch takes a while.
        loop {
            let (h, m) = self.recv_raw(Instant::now() + self.timeout)?;
            match m {
                Message::BarrierReply if h.xid == bxid => break,
                Message::Error(error) => {
                    if refused.is_none() {
                        refused = Some(ConnError::Refused { xid: h.xid, error });
                    }
                }
                other => self.stash.push((h, other)),
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
