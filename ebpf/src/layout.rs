//! Map layouts across versions: what the embedded objects want of each map
//! they pin by name, what a map already pinned by an earlier agent is, and
//! whether the two agree.
//!
//! aya 0.14 reuses a map pinned at `<dir>/<name>` without comparing it to
//! the object's definition (`MapData::create_pinned_by_name` keeps whatever
//! `BPF_OBJ_GET` returns; libbpf's `map_is_reuse_compat` has no aya
//! counterpart). A pinned map of another type, key or value size, capacity
//! or flags would then be used as if it were the new one: programs and the
//! agent would misread its entries (or the verifier would refuse them after
//! some pins had already been replaced). [`crate::Datapath::open_in`]
//! therefore compares every pinned map with [`wanted`] before it loads
//! anything, and refuses with [`LayoutMismatch`]es rather than recreate a
//! map (which would drop every flow through the node).
use std::{collections::BTreeMap, fmt, path::Path, sync::OnceLock};

use aya::maps::MapData;

use crate::{error::DatapathError, objects};

/// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`.
const PERF_EVENT_ARRAY: u32 = 4;
/// `BPF_MAP_TYPE_RINGBUF`.
const RINGBUF: u32 = 27;

/// One map's layout as the kernel knows it: what cannot change while the
/// map lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLayout {
    /// `enum bpf_map_type`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes (per CPU for per-CPU maps).
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub flags: u32,
}

impl MapLayout {
    /// The layout a map created from this definition gets: aya adjusts a
    /// ring buffer's size to a power-of-two multiple of the page size (its
    /// value size to 0) and a perf event array of 0 entries to one per CPU.
    pub fn as_created(self, page_size: u32, cpus: u32) -> Self {
        match self.map_type {
            RINGBUF => Self {
                value_size: 0,
                max_entries: ringbuf_size(self.max_entries, page_size),
                ..self
            },
            PERF_EVENT_ARRAY if self.max_entries == 0 => Self {
                max_entries: cpus,
                ..self
            },
            _ => self,
        }
    }
}

impl fmt::Display for MapLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match type_name(self.map_type) {
            Some(name) => f.write_str(name)?,
            None => write!(f, "type {}", self.map_type)?,
        }
        write!(
            f,
            ", key {} B, value {} B, {} entries, flags {:#x}",
            self.key_size, self.value_size, self.max_entries, self.flags
        )
    }
}

/// A pinned map whose layout is not the one this version's objects define.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutMismatch {
    /// The map's name (its pin's file name).
    pub map: String,
    /// What is pinned.
    pub pinned: MapLayout,
    /// What this version defines.
    pub wanted: MapLayout,
}

impl fmt::Display for LayoutMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "map `{}`: pinned {}; this version wants {}",
            self.map, self.pinned, self.wanted
        )
    }
}

/// The maps `wanted` defines that `pinned` holds with another layout, by
/// name. A wanted map that is not pinned (new in this version) is created
/// as usual and is no mismatch; a pinned map no longer wanted is left alone.
pub fn mismatches(
    wanted: &BTreeMap<String, MapLayout>,
    pinned: &BTreeMap<String, MapLayout>,
) -> Vec<LayoutMismatch> {
    wanted
        .iter()
        .filter_map(|(map, want)| {
            let have = pinned.get(map)?;
            (have != want).then(|| LayoutMismatch {
                map: map.clone(),
                pinned: *have,
                wanted: *want,
            })
        })
        .collect()
}

/// The maps an object pins by name, with their layouts as created on a
/// machine with `page_size` and `cpus`.
pub fn pinned_by_name(
    object: &[u8],
    page_size: u32,
    cpus: u32,
) -> Result<BTreeMap<String, MapLayout>, String> {
    let obj = aya_obj::Object::parse(object).map_err(|e| e.to_string())?;
    Ok(obj
        .maps
        .iter()
        .filter(|(_, m)| m.pinning() == aya_obj::maps::PinningType::ByName)
        .map(|(name, m)| {
            let layout = MapLayout {
                map_type: m.map_type(),
                key_size: m.key_size(),
                value_size: m.value_size(),
                max_entries: m.max_entries(),
                flags: m.map_flags(),
            };
            (name.clone(), layout.as_created(page_size, cpus))
        })
        .collect())
}

/// Every map the embedded objects ([`objects::TC`], [`objects::SOCK`]) pin
/// by name, with its layout on this machine. Both objects declare the maps
/// they share identically (a unit test checks it); the first wins here.
pub fn wanted() -> Result<&'static BTreeMap<String, MapLayout>, DatapathError> {
    static WANTED: OnceLock<Result<BTreeMap<String, MapLayout>, String>> = OnceLock::new();
    WANTED
        .get_or_init(|| {
            let page = page_size();
            let cpus = aya::util::nr_cpus().map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
            let mut all = BTreeMap::new();
            for object in [objects::TC, objects::SOCK] {
                for (name, layout) in pinned_by_name(object, page, cpus)? {
                    all.entry(name).or_insert(layout);
                }
            }
            Ok(all)
        })
        .as_ref()
        .map_err(|reason| DatapathError::MapLayoutUnreadable {
            path: "the embedded eBPF objects".into(),
            reason: reason.clone(),
        })
}

/// The layouts of the maps pinned in `dir` under the names `names`; a name
/// with no pin is left out.
pub fn read_pinned<'a>(
    dir: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, MapLayout>, DatapathError> {
    let mut out = BTreeMap::new();
    for name in names {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let unreadable = |reason: String| DatapathError::MapLayoutUnreadable {
            path: path.clone(),
            reason,
        };
        let info = MapData::from_pin(&path)
            .and_then(|m| m.info())
            .map_err(|e| unreadable(chain(&e)))?;
        // aya's MapType carries the kernel's numbering, as the object does.
        let map_type = info.map_type().map_err(|e| unreadable(chain(&e)))? as u32;
        out.insert(
            name.to_owned(),
            MapLayout {
                map_type,
                key_size: info.key_size(),
                value_size: info.value_size(),
                max_entries: info.max_entries(),
                flags: info.map_flags(),
            },
        );
    }
    Ok(out)
}

/// Checks every map pinned in `dir` against this version's objects
/// before anything is loaded or replaced.
pub(crate) fn check_pins(dir: &Path) -> Result<(), DatapathError> {
    let wanted = wanted()?;
    let pinned = read_pinned(dir, wanted.keys().map(String::as_str))?;
    let found = mismatches(wanted, &pinned);
    if found.is_empty() {
        return Ok(());
    }
    Err(DatapathError::MapLayoutChanged {
        dir: dir.to_owned(),
        mismatches: found,
    })
}

/// The operator's way out of a refused layout change, as the error says it.
pub(crate) fn remedy(dir: &Path) -> String {
    let node = dir
        .file_name()
        .map_or_else(|| "NODE".into(), |n| n.to_string_lossy().into_owned());
    format!(
        "The maps cannot be reused as they are and recreating them would drop every flow \
         through the node, so nothing was changed (the running data plane keeps serving). \
         To upgrade: drain the node (`jotactl drain {node}`), then start the new agent once \
         with `--reset-datapath` (it removes {} and sets the data plane up afresh), then \
         `jotactl uncordon {node}`; or keep running the previous agent version",
        dir.display()
    )
}

fn type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        1 => "hash",
        2 => "array",
        3 => "prog_array",
        4 => "perf_event_array",
        5 => "percpu_hash",
        6 => "percpu_array",
        9 => "lru_hash",
        10 => "lru_percpu_hash",
        11 => "lpm_trie",
        12 => "array_of_maps",
        13 => "hash_of_maps",
        27 => "ringbuf",
        _ => return None,
    })
}

/// A ring buffer's size as libbpf and aya round it: a power-of-two
/// multiple of the page size (0 stays 0, for the kernel to refuse).
fn ringbuf_size(bytes: u32, page: u32) -> u32 {
    if bytes == 0 || page == 0 {
        return bytes;
    }
    let pages = bytes.div_ceil(page).next_power_of_two();
    pages.saturating_mul(page)
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(n).unwrap_or(4096)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn hash(key: u32, value: u32, entries: u32) -> MapLayout {
        MapLayout {
            map_type: 1,
            key_size: key,
            value_size: value,
            max_entries: entries,
            flags: 1,
        }
    }

    fn set(maps: &[(&str, MapLayout)]) -> BTreeMap<String, MapLayout> {
        maps.iter().map(|(n, l)| ((*n).to_owned(), *l)).collect()
    }

    #[test]
    fn equal_layouts_and_new_maps_are_no_mismatch() {
        let wanted = set(&[("services", hash(8, 8, 100)), ("flows", hash(4, 4, 10))]);
        let pinned = set(&[("services", hash(8, 8, 100)), ("old_map", hash(1, 1, 1))]);
        assert!(mismatches(&wanted, &pinned).is_empty());
        assert!(mismatches(&wanted, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn every_field_counts() {
        let want = hash(8, 8, 100);
        let changed = [
            MapLayout {
                map_type: 9,
                ..want
            },
            MapLayout {
                key_size: 12,
                ..want
            },
            MapLayout {
                value_size: 16,
                ..want
            },
            MapLayout {
                max_entries: 50,
                ..want
            },
            MapLayout { flags: 0, ..want },
        ];
        for pinned in changed {
            let found = mismatches(&set(&[("m", want)]), &set(&[("m", pinned)]));
            assert_eq!(
                found,
                vec![LayoutMismatch {
                    map: "m".into(),
                    pinned,
                    wanted: want
                }]
            );
        }
    }

    #[test]
    fn a_mismatch_names_the_map_and_both_layouts() {
        let m = LayoutMismatch {
            map: "conntrack".into(),
            pinned: MapLayout {
                map_type: 9,
                ..hash(16, 32, 1000)
            },
            wanted: MapLayout {
                map_type: 9,
                ..hash(16, 40, 1000)
            },
        };
        assert_eq!(
            m.to_string(),
            "map `conntrack`: pinned lru_hash, key 16 B, value 32 B, 1000 entries, flags 0x1; \
             this version wants lru_hash, key 16 B, value 40 B, 1000 entries, flags 0x1"
        );
        assert_eq!(
            MapLayout {
                map_type: 99,
                ..hash(1, 2, 3)
            }
            .to_string(),
            "type 99, key 1 B, value 2 B, 3 entries, flags 0x1"
        );
    }

    #[test]
    fn ring_buffers_and_perf_arrays_are_compared_as_created() {
        let ring = MapLayout {
            map_type: RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: 5000,
            flags: 0,
        };
        assert_eq!(ring.as_created(4096, 2).max_entries, 8192);
        assert_eq!(
            MapLayout {
                max_entries: 3 * 4096,
                ..ring
            }
            .as_created(4096, 2)
            .max_entries,
            4 * 4096
        );
        let perf = MapLayout {
            map_type: PERF_EVENT_ARRAY,
            max_entries: 0,
            ..ring
        };
        assert_eq!(perf.as_created(4096, 2).max_entries, 2);
        let h = hash(8, 8, 100);
        assert_eq!(h.as_created(4096, 2), h);
    }

    #[test]
    fn both_objects_define_their_shared_maps_alike() {
        let tc = pinned_by_name(objects::TC, 4096, 2).unwrap();
        let sock = pinned_by_name(objects::SOCK, 4096, 2).unwrap();
        assert!(tc.contains_key("conntrack") && tc.contains_key("services"));
        assert!(sock.contains_key("sock_rev"));
        for (name, layout) in &sock {
            if let Some(t) = tc.get(name) {
                assert_eq!(
                    t, layout,
                    "map {name} differs between the tc and sock objects"
                );
            }
        }
        // Unpinned maps (scratch space, .rodata) are never compared.
        assert!(!tc.contains_key("dns_scratch"));
    }

    #[test]
    fn the_remedy_names_the_node_and_the_way_out() {
        let r = remedy(Path::new("/sys/fs/bpf/jotasu/node-a"));
        assert!(r.contains("jotactl drain node-a"), "{r}");
        assert!(r.contains("--reset-datapath"), "{r}");
        assert!(r.contains("/sys/fs/bpf/jotasu/node-a"), "{r}");
    }
}
