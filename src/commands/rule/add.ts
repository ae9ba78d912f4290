import {makeAddCommand} from '../../cli/rules-commands.js'

export default makeAddCommand('rule')
