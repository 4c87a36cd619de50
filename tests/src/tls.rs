//! A self-signed certificate (imported into moto's ACM) and a TLS front on 127.0.0.1: what
//! the HTTPS deploy tests put where the load balancer's HTTPS listener would be.

use std::process::Stdio;
use std::time::Duration;

use crate::terraform::Deployment;

#[derive(Debug)]
pub struct Certificate {
    dir: tempfile::TempDir,
}

impl Certificate {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let status = std::process::Command::new(crate::tool("openssl"))
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                &format!("subjectAltName=DNS:{name}"),
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl could not make a certificate");
        Self { dir }
    }

    pub fn pem_path(&self) -> String {
        self.dir.path().join("cert.pem").display().to_string()
    }

    pub fn key_path(&self) -> String {
        self.dir.path().join("key.pem").display().to_string()
    }

    /// Imports the certificate into ACM (moto's); its ARN.
    pub fn import(&self, stack: &Deployment) -> String {
        let imported = stack.aws(&[
            "acm",
            "import-certificate",
            "--certificate",
            &format!("fileb://{}", self.pem_path()),
            "--private-key",
            &format!("fileb://{}", self.key_path()),
        ]);
        crate::aws_query::text(&imported["CertificateArn"]).to_owned()
    }
}

/// socat terminating TLS with a certificate on 127.0.0.1 and forwarding to a local service:
/// what the load balancer's HTTPS listener does in front of the instances.
#[derive(Debug)]
pub struct TlsFront {
    /// `127.0.0.1:PORT`, where it accepts TLS.
    pub address: String,
    child: std::process::Child,
}

impl TlsFront {
    pub fn start(certificate: &Certificate, backend: &str) -> Self {
        let port = crate::free_port();
        let backend = backend.trim_start_matches("http://");
        let child = std::process::Command::new(crate::tool("socat"))
            .args([
                &format!(
                    "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                    certificate.pem_path(),
                    certificate.key_path()
                ),
                &format!("TCP:{backend}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        let address = format!("127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "socat does not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { address, child }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
