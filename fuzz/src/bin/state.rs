//! The OCI state JSON a runtime writes to a hook's stdin (src/input/state.rs).

use containerspec::input::state::HookState;

fn main() {
    loop {
        honggfuzz::fuzz!(|data: &[u8]| {
            containerspec_fuzz::panic_hook();
            if let Ok(state) = HookState::read(data) {
                let _ = state.container_pid();
            }
        });
    }
}
