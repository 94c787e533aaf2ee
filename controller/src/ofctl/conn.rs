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
    #[error("version negotiation failed (fuxi-ofctl speaks OpenFlow 1.3 only): {0}")]
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

/// fuxi-switchd's run directory: its bridges' management sockets are `/run/fuxi/<br>.mgmt`.
pub const FUXI_RUNDIR: &str = "/run/fuxi";
/// Open vSwitch's run directory (`/var/run/openvswitch/<br>.mgmt`).
pub const OVS_RUNDIR: &str = "/var/run/openvswitch";

/// Where a bare bridge name's socket is when no run directory is given: fuxi-switchd's if
/// it has that bridge, else Open vSwitch's.
pub fn default_socket(bridge: &str) -> PathBuf {
    let fuxi = Path::new(FUXI_RUNDIR).join(format!("{bridge}.mgmt"));
    if fuxi.exists() {
        fuxi
    } else {
        Path::new(OVS_RUNDIR).join(format!("{bridge}.mgmt"))
    }
}

impl Target {
    /// `tcp:HOST[:PORT]` (port 6653 by default), `unix:PATH`, or a bridge name `BR`, which
    /// means `unix:<rundir>/BR.mgmt` (Open vSwitch's convention; fuxi-switchd keeps it), or
    /// [`default_socket`] without a run directory.
    pub fn parse(s: &str, rundir: Option<&Path>) -> Result<Target, ConnError> {
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
            Ok(Target::Unix(match rundir {
                Some(r) => r.join(format!("{s}.mgmt")),
                None => default_socket(s),
            }))
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

    /// Exchanges HELLOs over an already connected Unix stream (a socketpair in tests).
    pub fn over_unix(stream: UnixStream, timeout: Duration) -> Result<Conn, ConnError> {
        let mut c = Conn {
            stream: Stream::Unix(stream),
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
                Ok(Some(Err(e))) => {
                    // Tell the peer what we refused, as a switch would, then give up.
                    let _ = self.write_all_draining(&e.reply_bytes());
                    if e.code == fuxi_openflow::ErrorCode::HELLO_INCOMPATIBLE {
                        return Err(ConnError::Version(format!(
                            "the switch does not offer OpenFlow 1.3 (its HELLO has version {:#04x})",
                            e.version
                        )));
                    }
                    return Err(ConnError::Decode(e.to_string()));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use fuxi_openflow::msg::{
        AggregateStats, Desc, HelloElement, MultipartReplyBody, MultipartRequestBody, Port,
    };

    /// The switch side of a socketpair: reads whole messages, writes encoded ones.
    struct Peer {
        s: UnixStream,
        f: Framer,
    }

    impl Peer {
        fn recv(&mut self) -> (Header, Message) {
            loop {
                if let Some(m) = self.f.next_message().unwrap() {
                    return m.unwrap();
                }
                let mut buf = [0u8; 4096];
                let n = self.s.read(&mut buf).unwrap();
                assert!(n > 0, "client closed");
                self.f.push(&buf[..n]);
            }
        }
        fn send(&mut self, m: Message, xid: u32) {
            self.s.write_all(&m.to_vec(xid)).unwrap();
        }
    }

    fn pair(peer: impl FnOnce(Peer) + Send + 'static) -> Result<Conn, ConnError> {
        let (a, b) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            peer(Peer {
                s: b,
                f: Framer::new(),
            })
        });
        Conn::over_unix(a, Duration::from_millis(500))
    }

    fn hello(p: &mut Peer) {
        p.send(Message::Hello(Hello::ofp13()), 1);
        assert!(matches!(p.recv().1, Message::Hello(_)));
    }

    #[test]
    fn multipart_parts_are_reassembled_and_echoes_answered() {
        let mut c = pair(|mut p| {
            hello(&mut p);
            let (h, m) = p.recv();
            assert!(matches!(
                m,
                Message::MultipartRequest(MultipartRequest {
                    body: MultipartRequestBody::PortDesc,
                    ..
                })
            ));
            // An echo request and an unrelated async message in the middle of the reply.
            p.send(Message::EchoRequest(b"ping".to_vec()), 77);
            let part = |no, more| {
                Message::MultipartReply(MultipartReply {
                    flags: if more { 1 } else { 0 },
                    body: MultipartReplyBody::PortDesc(vec![Port {
                        port_no: no,
                        name: format!("p{no}"),
                        ..Default::default()
                    }]),
                })
            };
            p.send(part(1, true), h.xid);
            let (eh, echo) = p.recv();
            assert_eq!((eh.xid, echo), (77, Message::EchoReply(b"ping".to_vec())));
            p.send(part(2, true), h.xid);
            p.send(Message::BarrierReply, 999);
            p.send(part(3, false), h.xid);
            // Keep the socket open until the client is done.
            let _ = p.recv();
        })
        .unwrap();
        let (xid, r) = c
            .multipart(MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::PortDesc,
            })
            .unwrap();
        assert_eq!(xid, 2);
        let MultipartReplyBody::PortDesc(ports) = r.body else {
            panic!("{r:?}")
        };
        assert_eq!(
            ports.iter().map(|p| p.port_no).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(r.flags, 0);
        // The stray message was kept for later.
        assert_eq!(
            c.recv(Some(Duration::ZERO)).unwrap().1,
            Message::BarrierReply
        );
    }

    #[test]
    fn errors_come_back_with_their_xid_and_mods_wait_for_the_barrier() {
        let mut c = pair(|mut p| {
            hello(&mut p);
            let (h1, _) = p.recv();
            let (h2, _) = p.recv();
            let (hb, b) = p.recv();
            assert_eq!(b, Message::BarrierRequest);
            p.send(
                Message::Error(fuxi_openflow::msg::ErrorMsg {
                    code: fuxi_openflow::ErrorCode::BAD_MATCH_BAD_PREREQ,
                    data: Message::BarrierRequest.to_vec(h2.xid),
                }),
                h2.xid,
            );
            p.send(Message::BarrierReply, hb.xid);
            assert!(h1.xid < h2.xid);
            let _ = p.recv();
        })
        .unwrap();
        let e = c
            .mods_with_barrier(&[Message::GetConfigRequest, Message::GetConfigRequest])
            .unwrap_err();
        match e {
            ConnError::Refused { xid, error } => {
                assert_eq!(xid, 3);
                assert_eq!(error.code, fuxi_openflow::ErrorCode::BAD_MATCH_BAD_PREREQ);
            }
            e => panic!("{e:?}"),
        }
        let text = crate::ofctl::format::format_error(
            3,
            &fuxi_openflow::msg::ErrorMsg {
                code: fuxi_openflow::ErrorCode::BAD_MATCH_BAD_PREREQ,
                data: Message::BarrierRequest.to_vec(3),
            },
        );
        assert_eq!(
            text,
            "OFPT_ERROR (OF1.3) (xid=0x3): OFPBMC_BAD_PREREQ\nOFPT_BARRIER_REQUEST (OF1.3) (xid=0x3):"
        );
    }

    #[test]
    fn a_silent_switch_times_out() {
        let mut c = pair(|mut p| {
            hello(&mut p);
            let _ = p.recv();
            std::thread::sleep(Duration::from_secs(2));
        })
        .unwrap();
        let t = std::time::Instant::now();
        let e = c
            .multipart(MultipartRequest {
                flags: 0,
                body: MultipartRequestBody::Desc,
            })
            .unwrap_err();
        assert!(matches!(e, ConnError::Timeout), "{e:?}");
        assert!(t.elapsed() < Duration::from_millis(1500));
        let _ = (Desc::default(), AggregateStats::default());
    }

    #[test]
    fn a_peer_without_openflow13_is_refused() {
        let e = pair(|mut p| {
            // OpenFlow 1.0 only, by bitmap.
            let h = Message::Hello(Hello {
                elements: vec![HelloElement::VersionBitmap(vec![1 << 1])],
            });
            let mut bytes = h.to_vec(1);
            bytes[0] = 1;
            p.s.write_all(&bytes).unwrap();
            let _ = p.recv();
        })
        .unwrap_err();
        assert!(matches!(e, ConnError::Version(_)), "{e:?}");
    }

    #[test]
    fn targets() {
        let r = Some(Path::new("/run/x"));
        assert_eq!(
            Target::parse("tcp:127.0.0.1:6653", r).unwrap(),
            Target::Tcp("127.0.0.1:6653".into())
        );
        assert_eq!(
            Target::parse("tcp:10.0.0.1", r).unwrap(),
            Target::Tcp("10.0.0.1:6653".into())
        );
        assert_eq!(
            Target::parse("tcp:[::1]:6633", r).unwrap(),
            Target::Tcp("[::1]:6633".into())
        );
        assert_eq!(
            Target::parse("unix:/a/b.mgmt", r).unwrap(),
            Target::Unix("/a/b.mgmt".into())
        );
        assert_eq!(
            Target::parse("br0", r).unwrap(),
            Target::Unix("/run/x/br0.mgmt".into())
        );
        assert!(Target::parse("ssl:1.2.3.4:6653", r).is_err());
        assert_eq!(
            Target::parse("nosuchbr", None).unwrap(),
            Target::Unix("/var/run/openvswitch/nosuchbr.mgmt".into())
        );
    }
}
