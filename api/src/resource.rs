//! The `Resource` trait (what every kind knows about itself) and the
//! zero-sized `apiVersion`/`kind` tags that make each kind serialise as
//! Kubernetes spells it.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::meta::ObjectMeta;

/// A kind of object: its fixed `apiVersion` and `kind`, its scope and its metadata.
pub trait Resource {
    /// The `apiVersion` this kind is served at, e.g. `apps/v1`.
    const API_VERSION: &'static str;
    /// The `kind`, e.g. `Deployment`.
    const KIND: &'static str;
    /// Whether objects of this kind live in a namespace (false for Node).
    const NAMESPACED: bool;
    /// The object's metadata.
    fn metadata(&self) -> &ObjectMeta;
    /// The object's metadata, mutably.
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
}

macro_rules! tag {
    ($(#[$doc:meta])* $name:ident, $konst:ident, $what:literal) => {
        $(#[$doc])*
        pub struct $name<K>(PhantomData<fn() -> K>);

        impl<K> Default for $name<K> {
            fn default() -> Self {
                Self(PhantomData)
            }
        }
        impl<K> Clone for $name<K> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<K> Copy for $name<K> {}
        impl<K> PartialEq for $name<K> {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }
        impl<K> Eq for $name<K> {}
        impl<K: Resource> fmt::Debug for $name<K> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(K::$konst)
            }
        }
        impl<K: Resource> Serialize for $name<K> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(K::$konst)
            }
        }
        impl<'de, K: Resource> Deserialize<'de> for $name<K> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let got = String::deserialize(d)?;
                if got == K::$konst {
                    Ok(Self(PhantomData))
                } else {
                    Err(serde::de::Error::custom(format!(
                        "{} must be {:?}, not {got:?}",
                        $what,
                        K::$konst
                    )))
                }
            }
        }
    };
}

tag!(
    /// The `apiVersion` field of kind `K`: always serialises as `K::API_VERSION`.
    ApiVersionTag,
    API_VERSION,
    "apiVersion"
);
tag!(
    /// The `kind` field of kind `K`: always serialises as `K::KIND`.
    KindTag,
    KIND,
    "kind"
);

/// Implements [`Resource`] for a kind struct with `metadata` field.
macro_rules! resource {
    ($ty:ty, $api:literal, $kind:literal, namespaced = $ns:literal) => {
        impl $crate::resource::Resource for $ty {
            const API_VERSION: &'static str = $api;
            const KIND: &'static str = $kind;
            const NAMESPACED: bool = $ns;
            fn metadata(&self) -> &$crate::meta::ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut $crate::meta::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use resource;
