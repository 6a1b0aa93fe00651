//! Unix domain datagram sockets (AF_UNIX, SOCK_DGRAM): where they may be bound and sent
//! to, and their names in the kernel's form.
//!
//! A page may bind only inside its session's own directory, which the server makes
//! (mode 0700, under `--unix-dir`) on the first Unix bind and removes with the session,
//! or to a name in Linux's abstract namespace (no file at all). It may send to those,
//! and to paths inside the directories `--allow-unix` names (a person's own program's
//! socket); never to another file on the machine. The sockets themselves are datagram
//! sockets like the UDP ones, carried by the same task (`udp.rs`).

use std::io;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::sys::socket::UnixAddr;
use socklab_protocol::{Endpoint, ErrorCode};

use crate::error::CommandError;

/// The longest name a page may give a socket in its session's directory.
pub const MAX_NAME: usize = 64;
/// The longest abstract name (the kernel's limit is 107 bytes).
pub const MAX_ABSTRACT: usize = 100;
/// The kernel's limit on a socket path, with its closing NUL (`sun_path`).
const SUN_PATH: usize = 108;

/// Where a Unix socket is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindTarget {
    /// A file in the session's directory.
    Path(PathBuf),
    /// A name in the abstract namespace.
    Abstract(Vec<u8>),
    /// A name the kernel picks (an abstract one of five hex digits): `unix:`.
    Auto,
}

/// The server's Unix sockets' home: the base directory (`--unix-dir`), the directory of
/// this server inside it (made on first use, removed when the server ends) and the
/// directories sends may also go to (`--allow-unix`).
#[derive(Debug)]
pub struct UnixRoot {
    base: PathBuf,
    allow: Vec<PathBuf>,
    dir: Mutex<Option<PathBuf>>,
}

impl UnixRoot {
    /// A root under `base` (None: `$XDG_RUNTIME_DIR/socklab`, else `/tmp/socklab-<uid>`),
    /// letting sends go to paths inside `allow` too.
    pub fn new(base: Option<PathBuf>, allow: Vec<PathBuf>) -> Self {
        let base = base.unwrap_or_else(default_base);
        // A directory that does not exist cannot hold a socket; it is kept as given
        // and refuses every path (nothing can canonicalize into it).
        let allow = allow
            .into_iter()
            .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
            .collect();
        UnixRoot {
            base,
            allow,
            dir: Mutex::new(None),
        }
    }

    /// This server's directory, made (and the base with it) on first use; directories
    /// of servers that are no longer running are removed then.
    fn dir(&self) -> Result<PathBuf, CommandError> {
        let mut dir = self.dir.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = &*dir {
            return Ok(dir.clone());
        }
        let made = private_dir(&self.base)
            .and_then(|()| {
                remove_stale(&self.base);
                let mine = self.base.join(format!(
                    "{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                std::fs::create_dir(&mine)?;
                std::fs::canonicalize(&mine)
            })
            .map_err(|e| {
                CommandError::new(
                    ErrorCode::IoError,
                    format!(
                        "cannot make a directory for Unix sockets in {}: {e} (choose another with --unix-dir)",
                        self.base.display()
                    ),
                )
            })?;
        *dir = Some(made.clone());
        Ok(made)
    }
}

impl Drop for UnixRoot {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.get_mut().unwrap_or_else(|e| e.into_inner()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `$XDG_RUNTIME_DIR/socklab`, else `/tmp/socklab-<uid>`.
fn default_base() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("socklab"),
        _ => std::env::temp_dir().join(format!("socklab-{}", nix::unistd::getuid())),
    }
}

/// Makes `dir` (mode 0700) unless it exists; an existing one must be a directory of
/// this user's that nobody else may write to (not a link someone else planted).
fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != nix::unistd::getuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{} exists and is not a private directory of this user",
            dir.display()
        )));
    }
    Ok(())
}

/// Removes the directories of servers that are no longer running (`<pid>-<random>`
/// with no such process).
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A session's Unix directory: made on the session's first Unix bind, removed with its
/// sockets' files when the session ends.
#[derive(Debug)]
pub struct SessionDir {
    root: Arc<UnixRoot>,
    session: String,
    dir: Option<PathBuf>,
}

impl SessionDir {
    /// The directory of session `session` under `root` (not made yet).
    pub fn new(root: Arc<UnixRoot>, session: &str) -> Self {
        SessionDir {
            root,
            session: session.to_owned(),
            dir: None,
        }
    }

    /// The directory, made now if it does not exist yet.
    fn dir(&mut self) -> Result<&Path, CommandError> {
        if self.dir.is_none() {
            let dir = self.root.dir()?.join(&self.session);
            if let Err(e) = std::fs::create_dir(&dir)
                && e.kind() != io::ErrorKind::AlreadyExists
            {
                return Err(CommandError::new(
                    ErrorCode::IoError,
                    format!("cannot make the session's directory {}: {e}", dir.display()),
                ));
            }
            self.dir = Some(dir);
        }
        Ok(self.dir.as_deref().expect("made above"))
    }

    /// Where `bind` with the Unix name `name` (the text after `unix:`) binds.
    pub fn bind_target(&mut self, name: &str) -> Result<BindTarget, CommandError> {
        if name.is_empty() {
            return Ok(BindTarget::Auto);
        }
        if let Some(name) = name.strip_prefix('@') {
            return abstract_name(name).map(BindTarget::Abstract);
        }
        let dir = self.dir()?.to_path_buf();
        let file = match name.strip_prefix('/') {
            // A full path is fine when it is in the session's directory (a person may
            // paste one back).
            Some(_) => match Path::new(name).parent() {
                Some(parent) if parent == dir => Path::new(name)
                    .file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or(""),
                _ => {
                    return Err(CommandError::new(
                        ErrorCode::Forbidden,
                        format!(
                            "a Unix socket is bound inside this session's directory ({}) or to an abstract name; give a name such as unix:echo or unix:@echo, not the path {name}",
                            dir.display()
                        ),
                    ));
                }
            },
            None => name,
        };
        check_file_name(file)?;
        let path = dir.join(file);
        check_path_len(&path)?;
        Ok(BindTarget::Path(path))
    }

    /// The Unix endpoint `name` (the text after `unix:`) a socket may send to or
    /// connect to: an abstract name, a name in the session's directory, or a full path
    /// inside the session's directory or an `--allow-unix` directory.
    pub fn destination(&mut self, name: &str) -> Result<Endpoint, CommandError> {
        if name.is_empty() {
            return Err(CommandError::bad_address(
                "unix: is a socket that never bound a name: nothing can be sent to it (a Unix datagram client that wants answers must bind a name first)",
            ));
        }
        if let Some(abs) = name.strip_prefix('@') {
            abstract_name(abs)?;
            return Ok(Endpoint::unix(name));
        }
        let dir = self.dir()?.to_path_buf();
        if !name.starts_with('/') {
            check_file_name(name)?;
            let path = dir.join(name);
            check_path_len(&path)?;
            return Ok(Endpoint::unix(&path.to_string_lossy()));
        }
        let path = Path::new(name);
        check_path_len(path)?;
        // Where the path really leads (through any links), the socket's own file
        // included when it exists.
        let real = std::fs::canonicalize(path).or_else(|_| {
            let parent = path.parent().unwrap_or(Path::new("/"));
            let file = path.file_name().unwrap_or_default();
            std::fs::canonicalize(parent).map(|p| p.join(file))
        });
        let inside = |real: &Path| {
            real.starts_with(&dir) || self.root.allow.iter().any(|a| real.starts_with(a))
        };
        match real {
            Ok(real) if inside(&real) => Ok(Endpoint::unix(name)),
            Ok(_) | Err(_) => Err(CommandError::new(
                ErrorCode::Forbidden,
                format!(
                    "{name} is outside this session's directory ({}) and the directories the server allows (--allow-unix{}); start socklab with --allow-unix DIR to let the page send to sockets in DIR, or use an abstract name (unix:@name)",
                    dir.display(),
                    if self.root.allow.is_empty() {
                        String::from(": none")
                    } else {
                        format!(
                            ": {}",
                            self.root
                                .allow
                                .iter()
                                .map(|d| d.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            )),
        }
    }
}

impl Drop for SessionDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn abstract_name(name: &str) -> Result<Vec<u8>, CommandError> {
    if name.is_empty() || name.len() > MAX_ABSTRACT || name.contains('\0') {
        return Err(CommandError::bad_address(format!(
            "an abstract name is 1 to {MAX_ABSTRACT} bytes after the @, without NUL; got {} bytes",
            name.len()
        )));
    }
    Ok(name.as_bytes().to_vec())
}

fn check_file_name(name: &str) -> Result<(), CommandError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if fine {
        Ok(())
    } else {
        Err(CommandError::bad_address(format!(
            "{name:?} is not a socket name: give 1 to {MAX_NAME} letters, digits, '.', '_' or '-' (not starting with '.'), such as unix:echo"
        )))
    }
}

fn check_path_len(path: &Path) -> Result<(), CommandError> {
    use std::os::unix::ffi::OsStrExt as _;
    let len = path.as_os_str().as_bytes().len();
    if len >= SUN_PATH {
        return Err(CommandError::bad_address(format!(
            "{} is {len} bytes long; a Unix socket's path must be shorter than {SUN_PATH} bytes (choose a shorter --unix-dir or name)",
            path.display()
        )));
    }
    Ok(())
}

/// The kernel's form of a Unix endpoint, to send to or connect to.
pub fn kernel_addr(to: &Endpoint) -> Option<UnixAddr> {
    let name = to.unix_name()?;
    match name.strip_prefix('@') {
        Some(abs) => UnixAddr::new_abstract(abs.as_bytes()).ok(),
        None if name.is_empty() => None,
        None => UnixAddr::new(name).ok(),
    }
}

/// A Unix address as an endpoint: its path, `@` and its abstract name, or empty for an
/// unnamed socket. A name that is not UTF-8 is shown with replacement characters.
pub fn endpoint_of(addr: &UnixAddr) -> Endpoint {
    use nix::sys::socket::SockaddrLike as _;
    // The kernel gives a sender that never bound a name no address at all (length 0),
    // which nix's readers of the name would refuse with a panic.
    if (addr.len() as usize) <= std::mem::size_of::<nix::libc::sa_family_t>() {
        return Endpoint::unix("");
    }
    if let Some(path) = addr.path() {
        Endpoint::unix(&path.to_string_lossy())
    } else if let Some(abs) = addr.as_abstract() {
        Endpoint::unix(&format!("@{}", String::from_utf8_lossy(abs)))
    } else {
        Endpoint::unix("")
    }
}

/// Opens a nonblocking Unix datagram socket bound to `target`, with kernel receive
/// timestamps. Returns it with its name as the kernel reports it.
pub fn open(target: &BindTarget) -> io::Result<(tokio::net::UnixDatagram, Endpoint)> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)?;
    if let Err(e) = nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::ReceiveTimestampns,
        &true,
    ) {
        tracing::debug!(error = %e, "no kernel receive timestamps (SO_TIMESTAMPNS)");
    }
    socket.set_nonblocking(true)?;
    let addr = match target {
        BindTarget::Path(path) => UnixAddr::new(path.as_path()),
        BindTarget::Abstract(name) => UnixAddr::new_abstract(name),
        BindTarget::Auto => Ok(UnixAddr::new_unnamed()),
    }
    .map_err(io::Error::from)?;
    nix::sys::socket::bind(socket.as_raw_fd(), &addr).map_err(io::Error::from)?;
    let local = nix::sys::socket::getsockname::<UnixAddr>(socket.as_raw_fd())
        .map(|a| endpoint_of(&a))
        .map_err(io::Error::from)?;
    let std: std::os::unix::net::UnixDatagram = socket.into();
    Ok((tokio::net::UnixDatagram::from_std(std)?, local))
}

/// The OS refused to bind `name`.
pub fn bind_error(err: &io::Error, name: &str) -> CommandError {
    match err.kind() {
        io::ErrorKind::AddrInUse => CommandError::new(
            ErrorCode::AddressInUse,
            format!("unix:{name} is already in use by another socket; pick another name"),
        ),
        _ => CommandError::new(
            ErrorCode::IoError,
            format!("cannot bind unix:{name}: {err}"),
        ),
    }
}

/// The OS refused to send to (or connect to) the Unix endpoint `to`.
pub fn send_error(err: &io::Error, to: &Endpoint) -> CommandError {
    match err.raw_os_error() {
        Some(nix::libc::ENOENT) => CommandError::bad_address(format!(
            "nothing is bound at {to}: no such file. Unlike UDP, a Unix datagram to a name nobody holds is refused at once, and nothing is sent"
        )),
        Some(nix::libc::ECONNREFUSED) => CommandError::bad_address(format!(
            "{to} names no live socket (connection refused): the file is there, but the program that bound it has closed it, and nothing is sent"
        )),
        Some(nix::libc::EPROTOTYPE) => CommandError::bad_address(format!(
            "{to} is a Unix stream socket, not a datagram one: a datagram cannot be sent to it"
        )),
        Some(nix::libc::EACCES) | Some(nix::libc::EPERM) => CommandError::new(
            ErrorCode::PermissionDenied,
            format!("permission denied sending to {to}: {err}"),
        ),
        _ => CommandError::new(ErrorCode::IoError, format!("cannot send to {to}: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> (tempfile::TempDir, SessionDir) {
        let base = tempfile::tempdir().unwrap();
        let root = Arc::new(UnixRoot::new(Some(base.path().join("u")), Vec::new()));
        (base, SessionDir::new(root, "abc"))
    }

    #[test]
    fn names_bind_in_the_sessions_directory_and_paths_elsewhere_are_refused() {
        let (_base, mut dir) = session();
        let BindTarget::Path(path) = dir.bind_target("echo").unwrap() else {
            panic!("a path");
        };
        assert!(path.ends_with("abc/echo"), "{}", path.display());
        assert!(path.parent().unwrap().is_dir(), "the directory is made");
        assert_eq!(
            dir.bind_target(&path.to_string_lossy()).unwrap(),
            BindTarget::Path(path.clone())
        );
        assert_eq!(
            dir.bind_target("@x").unwrap(),
            BindTarget::Abstract(b"x".to_vec())
        );
        assert_eq!(dir.bind_target("").unwrap(), BindTarget::Auto);
        for bad in ["/tmp/echo", "../echo", "a/b", ".hidden", "sp ace"] {
            assert!(dir.bind_target(bad).is_err(), "{bad}");
        }
        let long = "x".repeat(MAX_NAME + 1);
        assert!(dir.bind_target(&long).is_err());
        assert!(
            dir.bind_target(&format!("@{}", "y".repeat(MAX_ABSTRACT + 1)))
                .is_err()
        );
    }

    #[test]
    fn destinations_outside_the_allowed_directories_are_refused() {
        let (base, mut dir) = session();
        assert_eq!(dir.destination("@peer").unwrap(), Endpoint::unix("@peer"));
        let inside = dir.destination("echo").unwrap();
        assert!(inside.unix_name().unwrap().ends_with("/abc/echo"));
        let e = dir.destination("/etc/passwd").unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden, "{e:?}");
        assert!(e.message.contains("--allow-unix"), "{}", e.message);
        // A link inside the directory that leads out of it is followed.
        let real_dir = dir.dir().unwrap().to_path_buf();
        std::os::unix::fs::symlink("/etc", real_dir.join("out")).unwrap();
        let through = real_dir.join("out").join("passwd");
        assert!(dir.destination(&through.to_string_lossy()).is_err());
        assert!(dir.destination("").is_err());
        // An allowed directory lets paths in it through.
        let allowed = base.path().join("mine");
        std::fs::create_dir(&allowed).unwrap();
        let root = Arc::new(UnixRoot::new(
            Some(base.path().join("u2")),
            vec![allowed.clone()],
        ));
        let mut other = SessionDir::new(root, "def");
        let sock = allowed.join("prog.sock");
        assert_eq!(
            other.destination(&sock.to_string_lossy()).unwrap(),
            Endpoint::unix(&sock.to_string_lossy())
        );
    }

    #[test]
    fn the_sessions_directory_goes_with_the_session_and_the_servers_with_the_server() {
        let base = tempfile::tempdir().unwrap();
        let root = Arc::new(UnixRoot::new(Some(base.path().join("u")), Vec::new()));
        let mut dir = SessionDir::new(root.clone(), "s1");
        let made = dir.dir().unwrap().to_path_buf();
        assert!(made.is_dir());
        drop(dir);
        assert!(!made.exists());
        let server = made.parent().unwrap().to_path_buf();
        assert!(server.is_dir());
        drop(root);
        assert!(!server.exists());
    }

    #[test]
    fn a_base_someone_else_can_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let root = Arc::new(UnixRoot::new(Some(open), Vec::new()));
        let e = SessionDir::new(root, "s").bind_target("echo").unwrap_err();
        assert!(
            e.message.contains("not a private directory"),
            "{}",
            e.message
        );
    }
}
