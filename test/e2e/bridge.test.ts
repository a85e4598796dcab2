// Bridge mode end to end: the gateway is a bump in the wire between two interfaces with no IP
// address (libpcap capture, frames sent out of the other side). Skipped until the bridge
// datapath is built (dist/runtime/bridge-datapath.js) and the `cap` addon is compiled.
import { datapathSuite } from './suite';

function capBuilt(): string | null {
  try {
    require.resolve('cap/build/Release/cap.node');
    return null;
  } catch {
    return 'the cap addon is not built (node_modules/cap/build/Release/cap.node)';
  }
}

datapathSuite({
  mode: 'bridge',
  integrityBytes: 50_000_000,
  serverSidePlaintext: true,
  skip: { distFiles: ['dist/runtime/bridge-datapath.js'], check: capBuilt },
});
