//! The conformance suite against the adapter driving the simulated HTCondor command line.

mod support;

async fn simulated_pool() -> farm_conformance::TestFarm {
    support::SimFarm::new(|_, _| {}).into_test_farm()
}

farm_conformance::suite!(simulated_pool);
