//! Compiles the C eBPF programs in `bpf/` with clang into `$OUT_DIR/*.bpf.o`,
//! which `src/objects.rs` embeds. Set `JOTASU_CLANG` to pick another clang.
use std::{env, path::PathBuf, process::Command};

const PROGRAMS: &[&str] = &["tc", "sock"];
const HEADERS: &[&str] = &[
    "jotasu_maps.h",
    "lb.h",
    "external.h",
    "nat.h",
    "deliver.h",
    "reply.h",
    "dns.h",
    "drop.h",
    "events.h",
    "source.h",
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("JOTASU_CLANG").unwrap_or_else(|_| "clang-19".to_owned());
    println!("cargo:rerun-if-env-changed=JOTASU_CLANG");
    for h in HEADERS {
        println!("cargo:rerun-if-changed=bpf/{h}");
    }
    // The uapi headers include <asm/types.h>, which Debian keeps under the
    // multiarch directory of the host.
    let multiarch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "aarch64-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    for prog in PROGRAMS {
        let src = format!("bpf/{prog}.bpf.c");
        println!("cargo:rerun-if-changed={src}");
        let obj = out.join(format!("{prog}.bpf.o"));
        let status = Command::new(&clang)
            .args([
                "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror",
            ])
            .arg(format!("-I/usr/include/{multiarch}"))
            .args(["-c", &src, "-o"])
            .arg(&obj)
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run {clang} ({e}); run scripts/bootstrap.sh to install clang-19")
            });
        assert!(status.success(), "{clang} failed to compile {src}");
    }
}
