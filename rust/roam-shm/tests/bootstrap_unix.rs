//! Bootstrap between two processes over a real Unix listener socket: the guest is
//! this test binary re-executed (test `guest_child`), the host is the parent. The
//! three fds must be usable on the guest side: doorbell (a stream socketpair), the
//! segment file (mapped MAP_SHARED on both sides) and the mmap control channel.
#![cfg(not(feature = "loom"))]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roam_shm::segment::bootstrap::{self, BootstrapStatus};
use roam_shm::segment::mmap_ctrl::{MmapAttachments, MmapRegistry, control_socketpair};

const ENV_SOCK: &str = "ROAM_SHM_TEST_BOOTSTRAP_SOCK";
const SID: &[u8] = b"0123456789abcdef0123456789abcdef";
const SEG_LEN: usize = 4096;

#[test]
fn host_and_guest_processes() {
    let dir = std::env::temp_dir().join(format!("roam-shm-bootstrap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("ctl.sock");
    let seg_path = dir.join("segment");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap();

    // The "segment": a real file, as roam guests open it by path.
    let seg = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&seg_path)
        .unwrap();
    seg.set_len(SEG_LEN as u64).unwrap();
    // SAFETY: our own file, sized above, shared only with the child in this test.
    let mut seg_map = unsafe { memmap2::MmapMut::map_mut(&seg) }.unwrap();
    seg_map[100..110].copy_from_slice(b"host hello");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "guest_child", "--nocapture", "--test-threads=1"])
        .env(ENV_SOCK, &sock)
        // Captured: the child's own test-harness summary must not mix with ours.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // First connection: refuse it (Error, no fds).
    let c1 = accept(&listener, &mut child);
    assert_eq!(bootstrap::recv_request(c1.as_fd()).unwrap(), SID);
    bootstrap::send_response_unix(c1.as_fd(), BootstrapStatus::Error, 0, b"try again", None)
        .unwrap();
    drop(c1);

    // Second connection: accept it with the three fds.
    let c2 = accept(&listener, &mut child);
    assert_eq!(bootstrap::recv_request(c2.as_fd()).unwrap(), SID);
    let (mut door_host, door_guest) = UnixStream::pair().unwrap();
    let (ctl_host, ctl_guest) = control_socketpair().unwrap();
    bootstrap::send_response_unix(
        c2.as_fd(),
        BootstrapStatus::Success,
        1,
        seg_path.to_str().unwrap().as_bytes(),
        Some([door_guest.as_fd(), seg.as_fd(), ctl_guest.as_fd()]),
    )
    .unwrap();
    drop((door_guest, ctl_guest, c2));

    // An mmap payload, attached before the reference is announced.
    let mut reg = MmapRegistry::new(ctl_host);
    let a = reg.alloc_copy(b"mmap payload").unwrap();
    let mut announce = Vec::new();
    announce.extend_from_slice(&a.map_id.to_le_bytes());
    announce.extend_from_slice(&a.map_offset.to_le_bytes());
    announce.extend_from_slice(&(a.len as u32).to_le_bytes());
    door_host.write_all(&announce).unwrap();

    door_host
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut ok = [0u8; 2];
    let read = door_host.read_exact(&mut ok);
    let out = child.wait_with_output().unwrap();
    let log = format!(
        "guest stdout:\n{}\nguest stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read.is_ok() && &ok == b"ok", "{log}");
    assert!(out.status.success(), "{log}");
    // The guest wrote through its mapping of the segment fd.
    assert_eq!(&seg_map[0..14], b"guest was here");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Accept a connection, failing (not hanging) if the guest dies or stalls.
fn accept(listener: &UnixListener, child: &mut Child) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait().unwrap() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!("guest exited early ({status}): {err}");
                }
                assert!(Instant::now() < deadline, "guest never connected");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// The guest side; does nothing unless spawned by `host_and_guest_processes`.
#[test]
fn guest_child() {
    let Some(sock) = std::env::var_os(ENV_SOCK) else {
        return;
    };
    // Refused first.
    let c1 = UnixStream::connect(&sock).unwrap();
    bootstrap::send_request(c1.as_fd(), SID).unwrap();
    let mut buf = vec![0u8; 1024];
    let r = bootstrap::recv_response_unix(c1.as_fd(), &mut buf).unwrap();
    assert_eq!(r.info.status, BootstrapStatus::Error);
    assert_eq!(r.payload, b"try again");
    assert!(r.fds.is_none());
    drop(c1);

    let c2 = UnixStream::connect(&sock).unwrap();
    bootstrap::send_request(c2.as_fd(), SID).unwrap();
    let r = bootstrap::recv_response_unix(c2.as_fd(), &mut buf).unwrap();
    assert_eq!(r.info.status, BootstrapStatus::Success);
    assert_eq!(r.info.peer_id, 1);
    assert!(r.payload.ends_with(b"segment"));
    let [door, seg, ctl] = r.fds.unwrap();

    // Segment fd: map it and see the host's bytes; write ours.
    let seg = File::from(seg);
    assert_eq!(seg.metadata().unwrap().len(), SEG_LEN as u64);
    // SAFETY: a shared mapping of the host's segment file, for this test only.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&seg) }.unwrap();
    assert_eq!(&map[100..110], b"host hello");
    map[0..14].copy_from_slice(b"guest was here");
    map.flush().unwrap();

    // Doorbell: read the announcement of an mmap payload.
    let mut door = UnixStream::from(door);
    let mut ann = [0u8; 16];
    door.read_exact(&mut ann).unwrap();
    let map_id = u32::from_le_bytes(ann[0..4].try_into().unwrap());
    let off = u64::from_le_bytes(ann[4..12].try_into().unwrap());
    let len = u32::from_le_bytes(ann[12..16].try_into().unwrap());

    // Mmap control: the attachment was sent before the announcement.
    let mut att = MmapAttachments::new(ctl).unwrap();
    assert_eq!(att.drain_control().unwrap(), 1);
    assert_eq!(att.copy_out(map_id, 0, off, len).unwrap(), b"mmap payload");

    door.write_all(b"ok").unwrap();
}
