//! `from_pod` run by the kernel on hand-built frames (BPF_PROG_TEST_RUN), on
//! a node of its own: [`TcNode`] opens a fresh node's data plane (its own
//! pinned maps, programmed through [`Datapath`]) and loads a second copy of
//! `from_pod` on the same pins to run.
use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, TestRun, TestRunOptions},
};
use jotasu_ebpf::{Datapath, objects};

use crate::pins::NodePins;

/// A fresh node's data plane and a runnable `from_pod` on its maps.
pub struct TcNode {
    /// The node's data plane, to program services, names, endpoints.
    pub dp: Datapath,
    tc: Ebpf,
    /// Declared last: dropped after the maps are closed.
    _pins: NodePins,
}

impl TcNode {
    /// A node with nothing programmed.
    ///
    /// # Panics
    /// When the data plane cannot be opened or `from_pod` does not verify.
    #[allow(clippy::expect_used)] // a test harness fails loudly by design
    pub fn new() -> Self {
        let pins = NodePins::fresh();
        let dp = Datapath::open(pins.name()).expect("opening the node");
        let mut tc = EbpfLoader::new()
            .default_map_pin_directory(dp.pin_dir())
            .load(objects::TC)
            .expect("loading the from_pod object on the node's pins");
        let prog: &mut SchedClassifier = tc
            .program_mut("from_pod")
            .expect("from_pod")
            .try_into()
            .expect("a classifier");
        prog.load().expect("verifying from_pod");
        Self {
            dp,
            tc,
            _pins: pins,
        }
    }

    /// Runs `from_pod` on `frame`: its verdict and the frame as it leaves.
    ///
    /// # Panics
    /// When the kernel refuses the test run.
    #[allow(clippy::expect_used)]
    pub fn run(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        let prog: &SchedClassifier = self
            .tc
            .program("from_pod")
            .expect("from_pod")
            .try_into()
            .expect("a classifier");
        let mut out = vec![0; 1500];
        let res = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        out.truncate(res.data_size_out as usize);
        (res.return_value, out)
    }
}

impl std::fmt::Debug for TcNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcNode")
            .field("pins", &self.dp.pin_dir())
            .finish_non_exhaustive()
    }
}

impl Default for TcNode {
    fn default() -> Self {
        Self::new()
    }
}
