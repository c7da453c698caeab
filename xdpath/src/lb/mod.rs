//! The layer-4 load balancer's control side: Maglev tables, the VIP and
//! backend state, and its compilation into the data path's maps.

pub mod install;
pub mod maglev;
