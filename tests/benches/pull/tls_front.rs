//! The https case's TLS front in front of the S3 server (its certificate
//! from the test bed's throwaway CA, `dragonfly_endpoint_testbed::make_pki`).
//!
//! The front is this bench binary run again with [`SERVE`] (rustls with
//! aws-lc-rs, two tokio workers, 256 KiB relay buffers), so that its CPU
//! seconds are its own process's. The test bed's tests/support/tls_front.py
//! (a Python thread per connection) is not used here: on the 2-core bench
//! machine, 1 GiB from the store's page cache by curl, it relayed 620-725
//! MB/s at 1.0 CPU s/GiB when the machine was quiet and 330-425 MB/s under
//! load, against 740-880 MB/s at 0.6 CPU s/GiB for this front and 1.2-1.45
//! GB/s for plain HTTP straight from the store; one cold 1 GiB CLI pull
//! through either route reached 250-280 MB/s. Its CPU competes with
//! dfdaemon's and the CLI's on the same cores, so the cheaper front
//! disturbs the routes less. The case reports this front's ceiling beside
//! its rows.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;

use dragonfly_endpoint_testbed::Pki;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{crypto, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The first argument that makes this binary a TLS front: `SERVE CERT KEY
/// HOST:PORT`.
pub const SERVE: &str = "--serve-tls-front";

/// Relay buffer per direction and connection.
const BUF: usize = 256 * 1024;

/// TLS on 127.0.0.1 in front of a plain TCP server, in its own process;
/// killed on drop (and it exits by itself when this process's end of its
/// stdin closes).
pub struct TlsFront {
    child: Child,
    _stdin: ChildStdin,
    /// `https://127.0.0.1:port`
    pub url: String,
}

impl TlsFront {
    pub fn start(target_url: &str, pki: &Pki) -> TlsFront {
        let target = target_url
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let mut child = Command::new(std::env::current_exe().expect("this bench binary"))
            .arg(SERVE)
            .arg(&pki.leaf_cert)
            .arg(&pki.leaf_key)
            .arg(target)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the TLS front");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the TLS front prints its port");
        let port: u16 = line.trim().parse().expect("a port");
        TlsFront {
            child,
            _stdin: stdin,
            url: format!("https://127.0.0.1:{port}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:port`
    pub fn authority(&self) -> &str {
        self.url.trim_start_matches("https://")
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When this process was started as a TLS front ([`SERVE`]): serves until
/// its stdin closes, then returns true.
pub fn serve_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(SERVE) {
        return false;
    }
    let [cert, key, target] = [2, 3, 4].map(|i| {
        args.get(i)
            .cloned()
            .unwrap_or_else(|| panic!("{SERVE} CERT KEY HOST:PORT"))
    });
    // The bench that started this front is gone when stdin closes.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .expect("tokio runtime")
        .block_on(serve(acceptor(&cert, &key), target));
    true
}

fn acceptor(cert: &str, key: &str) -> TlsAcceptor {
    let certs = CertificateDer::pem_file_iter(cert)
        .expect("certificate PEM")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_file(key).expect("key PEM");
    let config =
        ServerConfig::builder_with_provider(Arc::new(crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("certificate and key");
    TlsAcceptor::from(Arc::new(config))
}

async fn serve(acceptor: TlsAcceptor, target: String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    println!("{port}");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, target) = (acceptor.clone(), target.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            // A client that refused the certificate ends here.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let Ok(mut upstream) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            let _ =
                tokio::io::copy_bidirectional_with_sizes(&mut tls, &mut upstream, BUF, BUF).await;
        });
    }
}
